import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { StatusView } from '../protocol/appliance-api.js';
import { formatApiStatus, resolveTarget } from './api-commands.js';

const STATUS: StatusView = {
  name: 'sp-a', role: 'sp', publicKey: 'K'.repeat(43) + '=', version: 7, listenPort: 51820,
  peers: [{
    publicKey: 'T'.repeat(43) + '=', name: 'tenant-a', endpoint: '192.0.2.1:51820', up: true, lastHandshakeAgoMs: 12_000, handshakes: 3,
    segments: [10, 20], counters: { rxPackets: 10, rxBytes: 3 * 1024 * 1024, txPackets: 5, txBytes: 2048 }, drops: {},
  }],
  segments: [
    { id: 10, name: 'servers', mode: 'gateway', internet: true, toTunnel: 5, fromTunnel: 6, drops: { 'double-tagged': 2 } },
    { id: 20, name: 'dmz', mode: 'extend', internet: false, toTunnel: 0, fromTunnel: 0, drops: {} },
  ],
  publicRules: [
    { name: 'web', kind: 'port', segment: 10, publicAddress: '203.0.113.17', protocol: 'tcp', publicPort: 80, target: '10.1.0.10', targetPort: 8080, hits: { packets: 42, bytes: 4200 } },
    { name: 'db', kind: 'address', segment: 10, publicAddress: '203.0.113.18', target: '10.1.0.11', hits: null },
  ],
  routing: { betweenSegments: false }, unauthenticatedDrops: {}, reconcileErrors: 0, lastReconcileError: null,
};

describe('nea status', () => {
  it('renders peers, segments with modes, and rules as tables', () => {
    const text = formatApiStatus(STATUS, { url: 'https://192.0.2.2:8443', fingerprint: 'ab'.repeat(32) });
    expect(text).toContain('appliance sp-a (role sp, state version 7)');
    expect(text).toContain(`api         https://192.0.2.2:8443  (sha256 ${'ab'.repeat(32)})`);
    expect(text).toMatch(/^ {2}tenant-a +T+= +up +192\.0\.2\.1:51820 +12 s ago +10,20 +3\.0 MiB +2\.0 KiB$/m);
    expect(text).toMatch(/^ {2}10 +servers +gateway +yes +5 +6 +double-tagged=2$/m);
    expect(text).toMatch(/^ {2}web +10 +203\.0\.113\.17:80\/tcp +10\.1\.0\.10:8080 +42 pkts$/m);
    expect(text).toMatch(/^ {2}db +10 +203\.0\.113\.18 \(1:1\) +10\.1\.0\.11 +-$/m);
    expect(formatApiStatus({ ...STATUS, peers: [], publicRules: [] })).toMatch(/peers\n {2}\(none\)/);
  });

  it('finds the appliance: options, then environment, then the local state dir', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nea-cli-'));
    writeFileSync(join(dir, 'api.json'), JSON.stringify({ url: 'https://127.0.0.1:8443', fingerprint: 'cd'.repeat(32) }));
    writeFileSync(join(dir, 'api-token'), 'nea_local\n');
    expect(resolveTarget({ 'state-dir': dir }, {})).toEqual({ url: 'https://127.0.0.1:8443', fingerprint: 'cd'.repeat(32), token: 'nea_local' });
    expect(resolveTarget({ url: 'https://h:1', fingerprint: 'ef'.repeat(32), token: 't' }, {})).toEqual({ url: 'https://h:1', fingerprint: 'ef'.repeat(32), token: 't' });
    expect(resolveTarget({}, { NEA_URL: 'https://e:2', NEA_FINGERPRINT: '01'.repeat(32), NEA_TOKEN: 'x' })).toEqual({ url: 'https://e:2', fingerprint: '01'.repeat(32), token: 'x' });
    expect(() => resolveTarget({ url: 'https://h:1' }, {})).toThrow(/--fingerprint SHA256 is required with --url/);
    expect(() => resolveTarget({ 'state-dir': join(dir, 'nope') }, {})).toThrow(/cannot read API info .*is the appliance running/);
  });
});
