/**
 * The appliance's persisted state, `<state-dir>/state.json`: its desired
 * state (segments with mode and internet, public IP rules, peers, routing
 * between segments) and its credentials (API tokens and pairing tokens, as
 * SHA-256 hashes only).
 *
 * Contracts:
 * - Writes are atomic and durable (write, fsync, rename, fsync the
 *   directory: writeFileAtomic). Before a new state replaces the file, the
 *   state it replaces is written to `state.json.prev` the same way, so the
 *   directory always holds the last two good states.
 * - `version` increases by exactly one per committed change; it never goes
 *   back (the previous state's version is lower). Each desired item records
 *   the version that last changed it (`revisions`): its ETag.
 * - Loading validates everything (schema, then meaning) and names the
 *   offending field. A file that is unreadable, truncated or invalid is
 *   refused: the previous good state (`state.json.prev`) is used, the bad
 *   file is kept beside it as `state.json.bad-<time>` for inspection, and the
 *   good state is written back. With neither file good, loading fails: the
 *   appliance never silently falls back to its config (that would drop
 *   pairings).
 * - Precedence between the config file and this file (docs/operations.md):
 *   the config seeds the desired state on first start. After that this file
 *   is the truth, except for what the operator changes in the config file:
 *   `seed` remembers the config's desired part as last applied, and each
 *   item (segment, peer, rule, routing) the config adds, changes or removes
 *   relative to it is applied on top at start (three-way merge,
 *   {@link mergeSeed}). Items the config did not touch keep what the API made
 *   of them.
 */
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { decodeKey, dh, generatePrivateKey } from '../dataplane/wg/crypto.js';
import { parseCidr, parseIp } from '../netconfig/ip.js';
import { Desired, TokenScope, type Peer, type PublicRule, type Segment } from '../protocol/appliance-api.js';
import { writeFileAtomic } from '../shared/atomic-file.js';
import { NeaError, ValidationError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { parseEndpoint } from './config.js';

export const STATE_FILE = 'state.json';
export const PREV_SUFFIX = '.prev';
export const STATE_FORMAT = 1;

const Sha256Hex = Type.String({ pattern: '^[0-9a-f]{64}$' });
const Iso = Type.String({ minLength: 10, maxLength: 40 });
const TokenId = Type.String({ pattern: '^[A-Za-z0-9_-]{8,32}$' });

export const ApiTokenRecord = Type.Object({
  id: TokenId, name: Type.String({ maxLength: 32 }), scope: TokenScope, hash: Sha256Hex, createdAt: Iso, revokedAt: Type.Optional(Iso),
}, { additionalProperties: false });
export type ApiTokenRecord = Static<typeof ApiTokenRecord>;

export const PairingTokenRecord = Type.Object({
  id: TokenId, hash: Sha256Hex, segments: Type.Array(Type.Integer({ minimum: 1, maximum: 4094 })), name: Type.Optional(Type.String({ maxLength: 63 })),
  endpoint: Type.String({ maxLength: 64 }), createdAt: Iso, expiresAt: Iso,
  usedAt: Type.Optional(Iso), usedBy: Type.Optional(Type.String({ maxLength: 44 })), revokedAt: Type.Optional(Iso),
}, { additionalProperties: false });
export type PairingTokenRecord = Static<typeof PairingTokenRecord>;

export const StateFileSchema = Type.Object({
  format: Type.Literal(STATE_FORMAT),
  version: Type.Integer({ minimum: 1 }),
  updatedAt: Iso,
  desired: Desired,
  /** Item key ({@link itemKey}) → version that last changed it. */
  revisions: Type.Record(Type.String({ maxLength: 80 }), Type.Integer({ minimum: 1 })),
  /** The config file's desired part as last merged; null before the first start. */
  seed: Type.Union([Desired, Type.Null()]),
  apiTokens: Type.Array(ApiTokenRecord, { maxItems: 1024 }),
  pairingTokens: Type.Array(PairingTokenRecord, { maxItems: 4096 }),
}, { additionalProperties: false });
export type StateFile = Static<typeof StateFileSchema>;

/** Keys of desired items in `revisions`. */
export const itemKey = {
  segment: (id: number): string => `segment:${id}`,
  peer: (publicKey: string): string => `peer:${publicKey}`,
  rule: (name: string): string => `rule:${name}`,
  routing: 'routing',
} as const;

/** Whether the item `key` ({@link itemKey}) is in `d`. */
function itemExists(d: Desired, key: string): boolean {
  if (key === itemKey.routing) return true;
  const [kind, id] = [key.slice(0, key.indexOf(':')), key.slice(key.indexOf(':') + 1)];
  if (kind === 'segment') return d.segments.some((s) => String(s.id) === id);
  if (kind === 'peer') return d.peers.some((p) => p.publicKey === id);
  return d.publicRules.some((r) => r.name === id);
}

/** An empty desired state: no segments, peers or rules, no routing. */
export function emptyDesired(): Desired {
  return { segments: [], publicRules: [], peers: [], routing: { betweenSegments: false } };
}

/** JSON pointer `/a/0/b` → `a[0].b`. */
function fieldOf(pointer: string): string {
  return pointer.split('/').slice(1).map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p.replace(/~1/g, '/').replace(/~0/g, '~')}`)).join('').replace(/^\./, '') || '(top level)';
}

/** Schema check with the first error as `field: message`. */
function checkSchema(schema: Parameters<typeof Value.Check>[0], value: unknown, at: string): void {
  const first = Value.Errors(schema, value).First();
  if (first) {
    const f = fieldOf(first.path);
    throw new ValidationError(`${at}${f}: ${first.message}${first.value === undefined ? '' : `, got ${JSON.stringify(first.value).slice(0, 60)}`}`);
  }
}

function isLowOrder(publicKey: Uint8Array): boolean {
  try {
    dh(generatePrivateKey(), publicKey);
    return false;
  } catch {
    return true;
  }
}

/**
 * The meaning of a desired state, beyond its schema: unique ids, backings
 * used once, references to existing segments, keys that decode and are not
 * low-order, addresses and prefixes that parse, segments in gateway mode with
 * a gateway address. Throws ValidationError naming the item and field.
 */
export function checkDesired(d: Desired, at = ''): void {
  checkSchema(Desired, d, at);
  const fail = (what: string, msg: string): never => { throw new ValidationError(`${at}${what}: ${msg}`); };
  const ids = new Set<number>();
  const access = new Map<string, number>();
  const vlans = new Map<string, number>();
  const trunks = new Map<string, number>();
  for (const s of d.segments) {
    const w = `segment ${s.id}`;
    if (ids.has(s.id)) fail(w, 'duplicate segment id');
    ids.add(s.id);
    if (s.backing?.kind === 'access') {
      const other = access.get(s.backing.interface) ?? trunks.get(s.backing.interface);
      if (other !== undefined) fail(`${w}: backing.interface`, `interface ${s.backing.interface} already backs segment ${other}`);
      access.set(s.backing.interface, s.id);
    } else if (s.backing?.kind === 'vlan') {
      const key = `${s.backing.trunk}/${s.backing.vlan}`;
      const other = vlans.get(key) ?? access.get(s.backing.trunk);
      if (other !== undefined) fail(`${w}: backing.vlan`, `VLAN ${s.backing.vlan} on ${s.backing.trunk} (or the interface itself) already backs segment ${other}`);
      vlans.set(key, s.id);
      trunks.set(s.backing.trunk, s.id);
    }
    for (const fam of ['ipv4', 'ipv6'] as const) {
      const g = s.gateway?.[fam];
      if (g === undefined) continue;
      const c = tryParse(() => parseCidr(g), `${at}${w}: gateway.${fam}`);
      if (c.family !== (fam === 'ipv4' ? 4 : 6)) fail(`${w}: gateway.${fam}`, `${g} is not an ${fam === 'ipv4' ? 'IPv4' : 'IPv6'} prefix`);
    }
    if (s.mode === 'gateway' && s.gateway?.ipv4 === undefined && s.gateway?.ipv6 === undefined) fail(`${w}: gateway`, 'a segment in gateway mode needs the production gateway address (gateway.ipv4 and/or gateway.ipv6)');
  }
  const rules = new Set<string>();
  for (const r of d.publicRules) {
    const w = `public rule ${r.name}`;
    if (rules.has(r.name)) fail(w, 'duplicate rule name');
    rules.add(r.name);
    if (!ids.has(r.segment)) fail(`${w}: segment`, `segment ${r.segment} does not exist`);
    const pub = tryParse(() => parseIp(r.publicAddress), `${at}${w}: publicAddress`);
    const tgt = tryParse(() => parseIp(r.target), `${at}${w}: target`);
    if (pub.family !== tgt.family) fail(`${w}: target`, 'must be of the same address family as publicAddress');
  }
  const keys = new Set<string>();
  for (const p of d.peers) {
    const w = `peer ${p.publicKey}`;
    if (keys.has(p.publicKey)) fail(w, 'duplicate peer');
    keys.add(p.publicKey);
    const key = tryParse(() => decodeKey(p.publicKey), `${at}${w}: publicKey`);
    if (isLowOrder(key)) fail(`${w}: publicKey`, 'is a low-order X25519 point; refusing it');
    if (p.presharedKey !== undefined) { const k = p.presharedKey; tryParse(() => decodeKey(k), `${at}${w}: presharedKey`); }
    if (p.endpoint !== undefined && !parseEndpoint(p.endpoint)) fail(`${w}: endpoint`, 'must be IPv4:PORT or [IPv6]:PORT with a port 1..65535');
    p.segments.forEach((id, i) => { if (!ids.has(id)) fail(`${w}: segments[${i}]`, `segment ${id} does not exist`); });
    (p.allowedIps ?? []).forEach((x, i) => { tryParse(() => parseCidr(x), `${at}${w}: allowedIps[${i}]`); });
  }
}

function tryParse<T>(f: () => T, what: string): T {
  try {
    return f();
  } catch (e) {
    throw new ValidationError(`${what}: ${(e as Error).message}`);
  }
}

/** Validate parsed JSON as a state file; `file` names the source in errors. */
export function parseStateFile(raw: unknown, file: string): StateFile {
  checkSchema(StateFileSchema, raw, `${file}: `);
  const s = raw as StateFile;
  checkDesired(s.desired, `${file}: desired: `);
  if (s.seed) checkSchema(Desired, s.seed, `${file}: seed.`);
  return s;
}

/** Reads and validates one state file; throws ValidationError (never a raw JSON error). */
export function readStateFile(path: string): StateFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ValidationError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, { cause: e });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ValidationError(`${path}: not valid JSON (truncated or damaged?): ${(e as Error).message}`, { cause: e });
  }
  return parseStateFile(raw, path);
}

// --- merge of the config's desired part --------------------------------------

type Keyed<T> = Map<string, T>;
const bySegment = (xs: readonly Segment[]): Keyed<Segment> => new Map(xs.map((x) => [itemKey.segment(x.id), x]));
const byPeer = (xs: readonly Peer[]): Keyed<Peer> => new Map(xs.map((x) => [itemKey.peer(x.publicKey), x]));
const byRule = (xs: readonly PublicRule[]): Keyed<PublicRule> => new Map(xs.map((x) => [itemKey.rule(x.name), x]));

/** Canonical JSON (sorted keys) for comparing items. */
export function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (x && typeof x === 'object' && !Array.isArray(x)
    ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    : x));
}

export function sameItem(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

function mergeList<T>(state: Keyed<T>, base: Keyed<T>, cfg: Keyed<T>, changed: string[]): T[] {
  const out = new Map(state);
  for (const k of new Set([...base.keys(), ...cfg.keys()])) {
    const b = base.get(k);
    const c = cfg.get(k);
    if (b !== undefined && c !== undefined && sameItem(b, c)) continue; // the config did not touch it
    if (b === undefined && c === undefined) continue;
    if (c === undefined) { if (out.delete(k)) changed.push(k); continue; }
    if (!out.has(k) || !sameItem(out.get(k), c)) changed.push(k);
    out.set(k, c);
  }
  return [...out.values()];
}

/**
 * Three-way merge: what the config changed relative to the last seed
 * (`base`, null on first start) is applied to the state's desired part.
 * Returns the merged desired state and the keys of the items that changed.
 */
export function mergeSeed(state: Desired, base: Desired | null, cfg: Desired): { desired: Desired; changed: string[] } {
  const b = base ?? emptyDesired();
  const changed: string[] = [];
  const desired: Desired = {
    segments: mergeList(bySegment(state.segments), bySegment(b.segments), bySegment(cfg.segments), changed).sort((x, y) => x.id - y.id),
    publicRules: mergeList(byRule(state.publicRules), byRule(b.publicRules), byRule(cfg.publicRules), changed),
    peers: mergeList(byPeer(state.peers), byPeer(b.peers), byPeer(cfg.peers), changed),
    routing: state.routing,
  };
  if (base === null ? !sameItem(state.routing, cfg.routing) : !sameItem(b.routing, cfg.routing) && !sameItem(state.routing, cfg.routing)) {
    desired.routing = cfg.routing;
    changed.push(itemKey.routing);
  }
  return { desired, changed };
}

// --- the store -----------------------------------------------------------------

export interface LoadResult {
  state: StateFile;
  /** Where the state came from. */
  source: 'state' | 'prev' | 'seeded';
  /** Why state.json was refused, when `source` is `prev`. */
  refused?: string;
}

export interface StateStoreOptions {
  dir: string;
  log: Logger;
  /** Clock for timestamps (ms since the epoch); default Date.now. */
  now?: () => number;
}

/**
 * Owner of `<dir>/state.json`. Holds the current state in memory; `commit`
 * replaces it (callers serialize their changes, control.ts).
 */
export class StateStore {
  readonly file: string;
  readonly prevFile: string;
  private state: StateFile;
  private readonly log: Logger;
  private readonly now: () => number;

  private constructor(opts: StateStoreOptions, state: StateFile) {
    this.file = join(opts.dir, STATE_FILE);
    this.prevFile = this.file + PREV_SUFFIX;
    this.state = state;
    this.log = opts.log;
    this.now = opts.now ?? Date.now;
  }

  /**
   * Loads the state (or the previous good one), merges the config's desired
   * part (`seed`) into it, and persists the result when anything changed.
   */
  static open(opts: StateStoreOptions, seed: Desired): { store: StateStore; load: LoadResult; changed: string[] } {
    const load = StateStore.load(opts);
    const store = new StateStore(opts, load.state);
    const merged = mergeSeed(load.state.desired, load.state.seed, seed);
    checkDesired(merged.desired, 'config and state merged: ');
    const next: StateFile = { ...structuredClone(load.state), desired: merged.desired, seed: structuredClone(seed) };
    // The version these items get: 1 when the file is new, else the next one.
    const version = load.source === 'seeded' ? load.state.version : load.state.version + 1;
    for (const k of merged.changed) {
      if (k.startsWith('segment:') || k.startsWith('peer:') || k.startsWith('rule:') || k === itemKey.routing) {
        if (itemExists(merged.desired, k)) next.revisions[k] = version;
        else Reflect.deleteProperty(next.revisions, k);
      }
    }
    if (merged.changed.length > 0) next.revisions.desired = version;
    if (load.source !== 'state' || merged.changed.length > 0 || !sameItem(load.state.seed, seed)) {
      if (load.source === 'seeded') store.writeFirst(next);
      else store.commit({ ...next, version: load.state.version + 1 }, load.source === 'prev');
    }
    // On a first start everything comes from the config: nothing to report.
    if (load.source !== 'seeded') for (const k of merged.changed) opts.log.info('desired state changed by the config file', { item: k, version: store.current.version });
    return { store, load, changed: merged.changed };
  }

  /** The state from disk: state.json, else state.json.prev, else a new empty one. */
  static load(opts: StateStoreOptions): LoadResult {
    const file = join(opts.dir, STATE_FILE);
    const prev = file + PREV_SUFFIX;
    const now = new Date((opts.now ?? Date.now)()).toISOString();
    if (!existsSync(file)) {
      return { source: 'seeded', state: { format: STATE_FORMAT, version: 1, updatedAt: now, desired: emptyDesired(), revisions: {}, seed: null, apiTokens: [], pairingTokens: [] } };
    }
    try {
      return { source: 'state', state: readStateFile(file) };
    } catch (e) {
      const why = (e as Error).message;
      if (!existsSync(prev)) throw new NeaError('STATE_INVALID', `${why}; no previous state (${prev}) to fall back to: restore ${file} from a backup, or move it away to start from the config file`, { cause: e });
      let state: StateFile;
      try {
        state = readStateFile(prev);
      } catch (e2) {
        throw new NeaError('STATE_INVALID', `${why}; the previous state is refused too (${(e2 as Error).message}): restore ${file} from a backup, or move both away to start from the config file`, { cause: e2 });
      }
      const aside = `${file}.bad-${now.replace(/[:.]/g, '-')}`;
      try { renameSync(file, aside); } catch { /* kept in place; the next commit replaces it */ }
      opts.log.error('state file refused; using the previous good state', { reason: why, version: state.version, keptAs: aside });
      return { source: 'prev', state, refused: why };
    }
  }

  /** A copy of the current state. */
  get current(): StateFile {
    return structuredClone(this.state);
  }

  get version(): number {
    return this.state.version;
  }

  private writeFirst(next: StateFile): void {
    this.write(this.file, next);
    this.state = next;
  }

  /**
   * Persists `next` (its version must be the current one plus one) and makes
   * it current. The state it replaces goes to `state.json.prev` first, unless
   * `skipPrev` (the current state is already the previous file's).
   */
  commit(next: StateFile, skipPrev = false): void {
    if (next.version !== this.state.version + 1) throw new Error(`state version must go from ${this.state.version} to ${this.state.version + 1}, not ${next.version}`);
    const stamped: StateFile = { ...next, updatedAt: new Date(this.now()).toISOString() };
    parseStateFile(structuredClone(stamped), 'next state');
    if (!skipPrev) this.write(this.prevFile, this.state);
    this.write(this.file, stamped);
    this.state = stamped;
  }

  private write(path: string, s: StateFile): void {
    try {
      writeFileAtomic(path, JSON.stringify(s, null, 2) + '\n', 0o600);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'error';
      throw new NeaError('STATE_WRITE_FAILED', `cannot write ${path} (${code}); run as root or choose a writable --state-dir`, { cause: e });
    }
  }
}
