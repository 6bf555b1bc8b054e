/**
 * The one way the appliance's persisted state changes: API requests,
 * pairing and token management all go through {@link StateManager.change}.
 *
 * A change, in order (one at a time: changes are serialized, so a check and
 * the write that depends on it never interleave with another change; this is
 * what makes a pairing token redeemable exactly once):
 *   1. the mutation runs on a copy of the current state; it may refuse
 *      (ValidationError, precondition failed, ...): nothing changes;
 *   2. an unchanged result is a no-op: no new version, no write (PUTs are
 *      idempotent);
 *   3. the new desired state is validated ({@link checkDesired}) and, when it
 *      differs, applied to the running appliance ({@link ApplianceControl});
 *      a refusal or failure there changes nothing on disk and is counted as a
 *      reconcile error;
 *   4. the new state is committed (state.json.prev, then state.json, both
 *      durable) and one log line per changed item is written.
 * A crash before 4 leaves the previous state on disk, which the next start
 * applies; a crash after 4 finds the new one.
 */
import type { Desired } from '../protocol/appliance-api.js';
import type { Logger } from '../shared/log.js';
import { NeaError } from '../shared/errors.js';
import { checkDesired, itemKey, sameItem, type StateFile, type StateStore } from './state.js';

/** What the running appliance reports (the daemon's status, reduced to what the API shows). */
export interface LiveStatus {
  /** Tunnel public key of this appliance (base64). */
  publicKey: string;
  /** UDP port of the tunnel; null without a tunnel. */
  listenPort: number | null;
  peers: {
    publicKey: string;
    endpoint: string | null;
    segments: number[];
    lastHandshakeAgoMs: number | null;
    counters: { rxPackets: number; rxBytes: number; txPackets: number; txBytes: number; handshakes: number; drops: Record<string, number> };
  }[];
  segments: { id: number; toTunnel: number; fromTunnel: number; drops: Record<string, number> }[];
  unauthenticatedDrops: Record<string, number>;
  /** NAT hit counters by public rule name, where the firewall reports them. */
  natHits?: Record<string, { packets: number; bytes: number }>;
}

/**
 * The running appliance, as the API and pairing see it. The real one wraps
 * the daemon (daemon-control.ts); tests use a fake.
 */
export interface ApplianceControl {
  readonly role: 'sp' | 'tenant';
  readonly name: string;
  /** Tunnel public key (base64). */
  publicKey(): string;
  status(): Promise<LiveStatus>;
  /**
   * Makes the running appliance match `next`. Throws when it cannot; the
   * previous desired state then stays in force (a NeaError whose status is
   * 4xx means `next` was refused as input, e.g. a port the appliance keeps).
   */
  apply(next: Desired): Promise<void>;
}

export interface ManagerOptions {
  store: StateStore;
  control: ApplianceControl;
  log: Logger;
  /** Clock; default `() => new Date()`. */
  now?: () => Date;
}

/** Counters of the reconcile loop, for /metrics and status. */
export interface ReconcileCounters {
  applies: number;
  errors: number;
  lastError: string | null;
}

export class StateManager {
  readonly counters: ReconcileCounters = { applies: 0, errors: 0, lastError: null };
  private tail: Promise<unknown> = Promise.resolve();
  readonly now: () => Date;

  constructor(private readonly opts: ManagerOptions) {
    this.now = opts.now ?? (() => new Date());
  }

  get control(): ApplianceControl {
    return this.opts.control;
  }

  /** A copy of the current state. */
  snapshot(): StateFile {
    return this.opts.store.current;
  }

  /** The version that last changed `key` ({@link itemKey}); 0 when the item does not exist. */
  revision(key: string): number {
    return this.opts.store.current.revisions[key] ?? 0;
  }

  /**
   * Runs one change (see the file comment). `mutate` edits the draft in
   * place and returns the answer for the caller; it runs alone.
   * `alreadyApplied`: `mutate` made the running appliance match the draft
   * itself (a config reload); step 3 only validates.
   */
  change<R>(what: string, mutate: (draft: StateFile) => R | Promise<R>, opts: { alreadyApplied?: boolean } = {}): Promise<R> {
    const run = async (): Promise<R> => {
      const before = this.opts.store.current;
      const draft = structuredClone(before);
      const result = await mutate(draft);
      const desiredChanged = !sameItem(before.desired, draft.desired);
      if (!desiredChanged && sameItem(before.apiTokens, draft.apiTokens) && sameItem(before.pairingTokens, draft.pairingTokens) && sameItem(before.seed, draft.seed)) return result;
      const version = before.version + 1;
      const changed = desiredChanged ? changedItems(before.desired, draft.desired) : [];
      if (desiredChanged) {
        checkDesired(draft.desired);
        if (!opts.alreadyApplied) try {
          this.counters.applies++;
          await this.opts.control.apply(draft.desired);
        } catch (e) {
          this.counters.errors++;
          this.counters.lastError = e instanceof Error ? e.message : String(e);
          this.opts.log.warn('desired state not applied; nothing changed', { change: what, error: this.counters.lastError });
          throw e;
        }
        for (const c of changed) {
          if (c.action === 'deleted') Reflect.deleteProperty(draft.revisions, c.key);
          else draft.revisions[c.key] = version;
        }
        draft.revisions.desired = version;
      }
      draft.version = version;
      try {
        this.opts.store.commit(draft);
      } catch (e) {
        // The appliance runs `draft` but the disk holds `before`: put the running state back.
        if (desiredChanged) await this.opts.control.apply(before.desired).catch(() => undefined);
        throw e;
      }
      for (const c of changed) this.opts.log.info('desired state changed', { item: c.key, action: c.action, version, by: what });
      return result;
    };
    const p = this.tail.then(run, run);
    this.tail = p.catch(() => undefined);
    return p;
  }

  /** Applies the persisted desired state (at start, and to retry after a failure). */
  async reconcile(): Promise<void> {
    return this.change('reconcile', async () => {
      try {
        this.counters.applies++;
        await this.opts.control.apply(this.opts.store.current.desired);
      } catch (e) {
        this.counters.errors++;
        this.counters.lastError = e instanceof Error ? e.message : String(e);
        throw e;
      }
    });
  }
}

export interface ItemChange { key: string; action: 'created' | 'updated' | 'deleted' }

/** Desired items that differ between two states, by key. */
export function changedItems(a: Desired, b: Desired): ItemChange[] {
  const out: ItemChange[] = [];
  const diff = <T>(xs: readonly T[], ys: readonly T[], key: (x: T) => string): void => {
    const am = new Map(xs.map((x) => [key(x), x]));
    const bm = new Map(ys.map((y) => [key(y), y]));
    for (const [k, y] of bm) {
      const x = am.get(k);
      if (x === undefined) out.push({ key: k, action: 'created' });
      else if (!sameItem(x, y)) out.push({ key: k, action: 'updated' });
    }
    for (const k of am.keys()) if (!bm.has(k)) out.push({ key: k, action: 'deleted' });
  };
  diff(a.segments, b.segments, (s) => itemKey.segment(s.id));
  diff(a.publicRules, b.publicRules, (r) => itemKey.rule(r.name));
  diff(a.peers, b.peers, (p) => itemKey.peer(p.publicKey));
  if (!sameItem(a.routing, b.routing)) out.push({ key: itemKey.routing, action: 'updated' });
  return out;
}

/** An If-Match / If-None-Match precondition on one item; throws API_PRECONDITION_FAILED. */
export function checkPrecondition(headers: { ifMatch?: string | undefined; ifNoneMatch?: string | undefined }, revision: number, what: string): void {
  const exists = revision > 0;
  const tags = (h: string): string[] => h.split(',').map((t) => t.trim());
  if (headers.ifMatch !== undefined) {
    const list = tags(headers.ifMatch);
    const ok = exists && (list.includes('*') || list.includes(`"${revision}"`));
    if (!ok) {
      throw new NeaError('API_PRECONDITION_FAILED', exists
        ? `${what} is at version "${revision}", not ${headers.ifMatch}: someone else changed it; read it again`
        : `${what} does not exist (If-Match ${headers.ifMatch})`);
    }
  }
  if (headers.ifNoneMatch !== undefined) {
    const list = tags(headers.ifNoneMatch);
    if (exists && (list.includes('*') || list.includes(`"${revision}"`))) {
      throw new NeaError('API_PRECONDITION_FAILED', `${what} exists (version "${revision}") and If-None-Match ${headers.ifNoneMatch} forbids replacing it`);
    }
  }
}
