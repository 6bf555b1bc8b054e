/**
 * The control plane's database: SQLite through better-sqlite3, one file.
 *
 * - WAL journal, `synchronous=FULL`: a committed transaction survives a
 *   crash or power loss; foreign keys on.
 * - Migrations: numbered SQL scripts below, applied in order inside one
 *   transaction each, recorded in `schema_migrations`; a database written by
 *   a newer nea (a migration number this build does not know) is refused
 *   rather than guessed at.
 * - Allocation is guarded by the schema itself: a VLAN is a row keyed
 *   (host, vlan) and a public IP a row keyed by its address, so no two
 *   tenants can hold the same one even if two processes allocate at once
 *   (writers take the database lock with BEGIN IMMEDIATE).
 */
import Database from 'better-sqlite3';
import { NeaError } from '../shared/errors.js';

export type Db = Database.Database;

const MIGRATIONS: readonly string[] = [
  // 1: the first schema
  `
  CREATE TABLE hosts (
    name TEXT PRIMARY KEY, trunk TEXT NOT NULL, description TEXT, created_at TEXT NOT NULL
  );
  CREATE TABLE vlan_pools (
    name TEXT PRIMARY KEY, host TEXT NOT NULL REFERENCES hosts(name),
    first INTEGER NOT NULL, last INTEGER NOT NULL, internet INTEGER NOT NULL,
    CHECK (first BETWEEN 1 AND 4094 AND last BETWEEN first AND 4094)
  );
  CREATE TABLE ip_pools (
    name TEXT PRIMARY KEY, first TEXT NOT NULL, last TEXT NOT NULL,
    first_n INTEGER NOT NULL, last_n INTEGER NOT NULL, description TEXT,
    CHECK (first_n <= last_n)
  );
  CREATE TABLE plans (name TEXT PRIMARY KEY, body TEXT NOT NULL);
  CREATE TABLE tenants (
    name TEXT PRIMARY KEY, description TEXT, created_at TEXT NOT NULL,
    failover TEXT NOT NULL DEFAULT 'none', failover_plan TEXT
  );
  CREATE TABLE subscriptions (
    tenant TEXT NOT NULL REFERENCES tenants(name), plan TEXT NOT NULL REFERENCES plans(name),
    host TEXT NOT NULL REFERENCES hosts(name), created_at TEXT NOT NULL,
    PRIMARY KEY (tenant, plan)
  );
  CREATE TABLE vlans (
    host TEXT NOT NULL, vlan INTEGER NOT NULL, pool TEXT NOT NULL REFERENCES vlan_pools(name),
    tenant TEXT NOT NULL, plan TEXT NOT NULL, internet INTEGER NOT NULL,
    PRIMARY KEY (host, vlan),
    FOREIGN KEY (tenant, plan) REFERENCES subscriptions(tenant, plan)
  );
  CREATE TABLE public_ips (
    address TEXT PRIMARY KEY, n INTEGER NOT NULL UNIQUE, pool TEXT NOT NULL REFERENCES ip_pools(name),
    tenant TEXT NOT NULL, plan TEXT NOT NULL,
    FOREIGN KEY (tenant, plan) REFERENCES subscriptions(tenant, plan)
  );
  CREATE TABLE appliances (
    tenant TEXT PRIMARY KEY REFERENCES tenants(name), url TEXT NOT NULL, fingerprint TEXT NOT NULL,
    token TEXT NOT NULL, endpoint TEXT, registered_at TEXT NOT NULL
  );
  CREATE TABLE networks (
    tenant TEXT NOT NULL REFERENCES tenants(name), name TEXT NOT NULL, subnet TEXT NOT NULL, gateway TEXT NOT NULL,
    host TEXT NOT NULL, vlan INTEGER NOT NULL, mode TEXT NOT NULL DEFAULT 'isolated',
    PRIMARY KEY (tenant, name), UNIQUE (host, vlan),
    FOREIGN KEY (host, vlan) REFERENCES vlans(host, vlan)
  );
  CREATE TABLE replicas (
    tenant TEXT NOT NULL, name TEXT NOT NULL, network TEXT NOT NULL, address TEXT NOT NULL, mac TEXT NOT NULL,
    restore_point TEXT, state TEXT NOT NULL DEFAULT 'Normal',
    PRIMARY KEY (tenant, name),
    FOREIGN KEY (tenant, network) REFERENCES networks(tenant, name)
  );
  CREATE TABLE failover_plans (
    tenant TEXT NOT NULL REFERENCES tenants(name), name TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
  );
  CREATE TABLE jobs (
    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL,
    request TEXT NOT NULL, steps TEXT NOT NULL, created_by TEXT NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, ended_at TEXT, error TEXT
  );
  CREATE INDEX jobs_tenant ON jobs(tenant, created_at);
  CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    tenant TEXT, target TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT
  );
  CREATE TABLE tokens (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, scope TEXT NOT NULL, tenant TEXT, hash TEXT NOT NULL,
    created_at TEXT NOT NULL, revoked_at TEXT
  );
  `,
];

/** The schema version this build writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** Opens (creating if needed) and migrates the database at `file` (`:memory:` for tests). */
export function openDb(file: string): Db {
  let db: Db;
  try {
    db = new Database(file);
  } catch (e) {
    throw new NeaError('CONTROL_DB_FAILED', `cannot open the database ${file}: ${(e as Error).message}`, { cause: e });
  }
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    migrate(db, file);
  } catch (e) {
    db.close();
    if (e instanceof NeaError) throw e;
    throw new NeaError('CONTROL_DB_FAILED', `cannot prepare the database ${file}: ${(e as Error).message}`, { cause: e });
  }
  return db;
}

function migrate(db: Db, file: string): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)');
  const row = db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null };
  const have = row.v ?? 0;
  if (have > MIGRATIONS.length) {
    throw new NeaError('CONTROL_DB_FAILED', `the database ${file} has schema version ${have}, newer than this nea knows (${MIGRATIONS.length}); run the newer nea`);
  }
  for (let v = have + 1; v <= MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v - 1]!);
      db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(v, new Date().toISOString());
    }).immediate();
  }
}

/** Runs `fn` in a write transaction that takes the lock at its start. */
export function writeTx<T>(db: Db, fn: () => T): T {
  return db.transaction(fn).immediate();
}
