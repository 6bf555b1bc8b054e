import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../dataplane/wg/crypto.js';
import type { Desired } from '../protocol/appliance-api.js';
import { NeaError } from '../shared/errors.js';
import { createLogger } from '../shared/log.js';
import { SEED } from './api/testkit.js';
import { checkDesired, emptyDesired, mergeSeed, readStateFile, StateStore, STATE_FILE } from './state.js';

const quiet = createLogger({ sink: () => undefined });
const key = (): string => encodeKey(publicKeyOf(generatePrivateKey()));
const dir = (): string => mkdtempSync(join(tmpdir(), 'nea-state-'));

function withPeer(d: Desired, publicKey: string, segments = [10]): Desired {
  return { ...d, peers: [...d.peers, { publicKey, segments }] };
}

describe('state file', () => {
  it('is seeded from the config on first start, as version 1, and read back the same', () => {
    const d = dir();
    const { store, load } = StateStore.open({ dir: d, log: quiet }, SEED);
    expect(load.source).toBe('seeded');
    expect(store.version).toBe(1);
    expect(store.current.desired).toEqual(SEED);
    expect(store.current.revisions).toEqual({ 'segment:10': 1, 'segment:20': 1, desired: 1 });
    const again = StateStore.open({ dir: d, log: quiet }, SEED);
    expect(again.load.source).toBe('state');
    expect(again.store.current).toEqual(store.current);
    expect(readFileSync(join(d, STATE_FILE), 'utf8').endsWith('}\n')).toBe(true);
  });

  it('commits durably: version +1, the replaced state kept as state.json.prev, no temporary files left', () => {
    const d = dir();
    const { store } = StateStore.open({ dir: d, log: quiet }, SEED);
    const next = store.current;
    next.version = 2;
    next.desired.routing.betweenSegments = true;
    store.commit(next);
    expect(readStateFile(join(d, STATE_FILE)).version).toBe(2);
    expect(readStateFile(join(d, `${STATE_FILE}.prev`)).version).toBe(1);
    expect(readdirSync(d).filter((f) => f.includes('.tmp'))).toEqual([]);
    expect(() => { store.commit({ ...store.current, version: 2 }); }).toThrow(/version must go from 2 to 3/);
  });

  it('a truncated state file is detected and the previous good state used; the bad file is kept aside', () => {
    const d = dir();
    const lines: string[] = [];
    const log = createLogger({ sink: (l) => lines.push(l) });
    const { store } = StateStore.open({ dir: d, log }, SEED);
    const next = store.current;
    next.version = 2;
    next.desired = withPeer(next.desired, key());
    store.commit(next);
    const good = readFileSync(join(d, STATE_FILE), 'utf8');
    writeFileSync(join(d, STATE_FILE), good.slice(0, Math.floor(good.length / 2))); // torn mid-write
    const r = StateStore.open({ dir: d, log }, SEED);
    expect(r.load.source).toBe('prev');
    expect(r.load.refused).toMatch(/not valid JSON \(truncated or damaged\?\)/);
    // Version 1 (the previous file) is current again, written back as a new version.
    expect(r.store.current.desired.peers).toEqual([]);
    expect(r.store.version).toBe(2);
    expect(readStateFile(join(d, STATE_FILE)).version).toBe(2);
    expect(readdirSync(d).some((f) => f.startsWith(`${STATE_FILE}.bad-`))).toBe(true);
    expect(lines.join('\n')).toMatch(/ERROR state file refused; using the previous good state/);
  });

  it('an invalid state file is refused with a message naming the field', () => {
    const d = dir();
    const { store } = StateStore.open({ dir: d, log: quiet }, SEED);
    const bad = structuredClone(store.current) as unknown as { desired: { segments: { id: number }[] } };
    bad.desired.segments[1]!.id = 5000;
    writeFileSync(join(d, STATE_FILE), JSON.stringify(bad));
    expect(() => readStateFile(join(d, STATE_FILE))).toThrow(/state\.json: desired\.segments\[1\]\.id: Expected integer to be less or equal to 4094, got 5000/);
    const bad2 = structuredClone(store.current);
    bad2.desired.peers = [{ publicKey: key(), segments: [99] }];
    writeFileSync(join(d, STATE_FILE), JSON.stringify(bad2));
    expect(() => readStateFile(join(d, STATE_FILE))).toThrow(/desired: peer .*: segments\[0\]: segment 99 does not exist/);
  });

  it('with both files refused, the appliance does not start (STATE_INVALID), and nothing is overwritten', () => {
    const d = dir();
    const { store } = StateStore.open({ dir: d, log: quiet }, SEED);
    store.commit({ ...store.current, version: 2 });
    writeFileSync(join(d, STATE_FILE), '{"format":1,');
    writeFileSync(join(d, `${STATE_FILE}.prev`), 'garbage');
    let err: unknown;
    try { StateStore.open({ dir: d, log: quiet }, SEED); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(NeaError);
    expect((err as NeaError).code).toBe('STATE_INVALID');
    expect(readFileSync(join(d, STATE_FILE), 'utf8')).toBe('{"format":1,');
  });

  it('a write torn by a crash (a temporary file left beside it) is never read; the file is 0600', () => {
    const d = dir();
    const { store } = StateStore.open({ dir: d, log: quiet }, SEED);
    // writeFileAtomic writes .state.json.<pid>.tmp, fsyncs, renames: a crash before the rename leaves only the temporary file.
    writeFileSync(join(d, `.${STATE_FILE}.99999.tmp`), '{"format":1,"vers');
    const r = StateStore.open({ dir: d, log: quiet }, SEED);
    expect(r.load.source).toBe('state');
    expect(r.store.current).toEqual(store.current);
    expect(statSync(join(d, STATE_FILE)).mode & 0o777).toBe(0o600);
  });

  it('a missing state.json is a first start (state.json.prev alone is not used)', () => {
    const d = dir();
    expect(existsSync(join(d, STATE_FILE))).toBe(false);
    expect(StateStore.open({ dir: d, log: quiet }, SEED).load.source).toBe('seeded');
  });
});

describe('config precedence (three-way merge of the config\'s desired part)', () => {
  const p1 = key();
  const p2 = key();
  const base = withPeer(SEED, p1);
  const cases: { name: string; state: Desired; cfg: Desired; want: (d: Desired) => void; changed: string[] }[] = [
    {
      name: 'config unchanged: the API\'s edits stay (a paired peer, a mode)',
      state: { ...withPeer(base, p2, [20]), segments: SEED.segments.map((s) => (s.id === 10 ? { ...s, mode: 'gateway' as const } : s)) },
      cfg: base,
      want: (d) => { expect(d.peers.map((p) => p.publicKey)).toEqual([p1, p2]); expect(d.segments[0]!.mode).toBe('gateway'); },
      changed: [],
    },
    {
      name: 'the config changes one segment: that segment follows the config, the rest stays',
      state: withPeer(base, p2, [20]),
      cfg: { ...base, segments: base.segments.map((s) => (s.id === 20 ? { ...s, name: 'dmz2' } : s)) },
      want: (d) => { expect(d.segments[1]!.name).toBe('dmz2'); expect(d.peers).toHaveLength(2); },
      changed: ['segment:20'],
    },
    {
      name: 'the config removes its peer: it goes; the paired one stays',
      state: withPeer(base, p2, [20]),
      cfg: SEED,
      want: (d) => { expect(d.peers.map((p) => p.publicKey)).toEqual([p2]); },
      changed: [`peer:${p1}`],
    },
    {
      name: 'the config turns routing on',
      state: base,
      cfg: { ...base, routing: { betweenSegments: true } },
      want: (d) => { expect(d.routing.betweenSegments).toBe(true); },
      changed: ['routing'],
    },
    {
      name: 'the API turned routing on, the config did not touch it: it stays on',
      state: { ...base, routing: { betweenSegments: true } },
      cfg: base,
      want: (d) => { expect(d.routing.betweenSegments).toBe(true); },
      changed: [],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = mergeSeed(c.state, base, c.cfg);
      c.want(r.desired);
      expect(r.changed).toEqual(c.changed);
      checkDesired(r.desired);
    });
  }

  it('first start: everything comes from the config', () => {
    expect(mergeSeed(emptyDesired(), null, base).desired).toEqual(base);
  });

  it('a restart with an edited config file applies the edit and keeps the state\'s other items', () => {
    const d = dir();
    const { store } = StateStore.open({ dir: d, log: quiet }, SEED);
    const next = store.current;
    next.version = 2;
    next.desired = withPeer(next.desired, p2, [20]);
    store.commit(next);
    const edited = { ...SEED, segments: SEED.segments.map((s) => (s.id === 10 ? { ...s, internet: true } : s)) };
    const r = StateStore.open({ dir: d, log: quiet }, edited);
    expect(r.changed).toEqual(['segment:10']);
    expect(r.store.current.desired.segments[0]!.internet).toBe(true);
    expect(r.store.current.desired.peers.map((p) => p.publicKey)).toEqual([p2]);
    expect(r.store.current.revisions['segment:10']).toBe(3);
    // The config removes segment 20, which the API's peer uses: refused, naming both, nothing written.
    const before = readFileSync(join(d, STATE_FILE), 'utf8');
    expect(() => StateStore.open({ dir: d, log: quiet }, { ...edited, segments: edited.segments.filter((s) => s.id === 10) }))
      .toThrow(/config and state merged: peer .*: segments\[0\]: segment 20 does not exist/);
    expect(readFileSync(join(d, STATE_FILE), 'utf8')).toBe(before);
  });

  it('an item the config removes loses its revision', () => {
    const d = dir();
    StateStore.open({ dir: d, log: quiet }, SEED);
    const r = StateStore.open({ dir: d, log: quiet }, { ...SEED, segments: SEED.segments.filter((s) => s.id === 10) });
    expect(r.store.current.revisions).toEqual({ 'segment:10': 1, desired: 2 });
  });
});

describe('checkDesired', () => {
  const table: [string, (d: Desired) => void, RegExp][] = [
    ['duplicate segment id', (d) => { d.segments.push({ ...d.segments[0]! }); }, /segment 10: duplicate segment id/],
    ['VLAN backing twice', (d) => {
      d.segments[0]!.backing = { kind: 'vlan', trunk: 'eth1', vlan: 100 };
      d.segments[1]!.backing = { kind: 'vlan', trunk: 'eth1', vlan: 100 };
    }, /segment 20: backing\.vlan: VLAN 100 on eth1/],
    ['gateway mode without a gateway', (d) => { d.segments[1]!.mode = 'gateway'; }, /segment 20: gateway: a segment in gateway mode needs the production gateway address/],
    ['bad gateway prefix', (d) => { d.segments[0]!.gateway = { ipv4: '10.0.0.1/33' }; }, /segment 10: gateway\.ipv4: .*prefix length/],
    ['IPv6 as gateway.ipv4', (d) => { d.segments[0]!.gateway = { ipv4: '1.2.3.4/24', ipv6: '10.0.0.1/24' }; }, /gateway\.ipv6: Expected string to match/],
    ['rule on a missing segment', (d) => {
      d.publicRules.push({ name: 'web', kind: 'port', segment: 30, publicAddress: '203.0.113.5', protocol: 'tcp', publicPort: 443, target: '198.51.100.10' });
    }, /public rule web: segment: segment 30 does not exist/],
    ['rule mixing families', (d) => {
      d.publicRules.push({ name: 'web', kind: 'address', segment: 10, publicAddress: '203.0.113.5', target: '2001:db8::1' });
    }, /public rule web: target: must be of the same address family/],
    ['low-order peer key', (d) => { d.peers.push({ publicKey: 'A'.repeat(43) + '=', segments: [10] }); }, /publicKey: is a low-order X25519 point/],
    ['peer on a missing segment', (d) => { d.peers.push({ publicKey: key(), segments: [30] }); }, /segments\[0\]: segment 30 does not exist/],
    ['peer endpoint port 0', (d) => { d.peers.push({ publicKey: key(), segments: [10], endpoint: '192.0.2.1:0' }); }, /endpoint: must be IPv4:PORT/],
    ['unknown field', (d) => { (d.segments[0] as unknown as Record<string, unknown>).color = 'red'; }, /segments\[0\]\.color|Unexpected property/],
  ];
  for (const [name, mutate, re] of table) {
    it(`refuses: ${name}`, () => {
      const d = structuredClone(SEED);
      mutate(d);
      expect(() => { checkDesired(d); }).toThrow(re);
    });
  }
});
