/**
 * Segment guards in the engine, without a kernel: two sites over the
 * in-memory UDP network. A guarded SP side must drop frames that carry a
 * VLAN tag of their own, from its local port and from the tunnel alike, and
 * count them; untagged frames still cross.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createFakePair, type FakeDevice } from '../fake-device.js';
import { generatePrivateKey, publicKeyOf } from '../wg/crypto.js';
import { createLogger } from '../../shared/log.js';
import { arpRequest } from '../../protocol/ethernet.js';
import { TPID_8021AD, insertTag, tagWord } from '../../protocol/vlan.js';
import { TunnelEngine } from './engine.js';
import { FakeUdpNetwork } from './fake-socket.js';
import { innerTagGuard, type FrameGuard } from './guard.js';

interface Site { engine: TunnelEngine; pub: Uint8Array; bridge: FakeDevice; got: Uint8Array[] }

const engines: TunnelEngine[] = [];
afterEach(() => { for (const e of engines.splice(0)) e.stop(); });

function site(net: FakeUdpNetwork, address: string, guard?: FrameGuard): Site {
  const priv = generatePrivateKey();
  const [app, br] = createFakePair({ name: 'tap10' }, { name: 'br10' });
  const got: Uint8Array[] = [];
  br.onBatch((b) => { for (let i = 0; i < b.count; i++) got.push(new Uint8Array(b.frame(i))); });
  const engine = new TunnelEngine({
    privateKey: priv, socket: net.bind(address, 51820), segments: new Map([[10, app]]), log: createLogger({ level: 'error' }),
    ...(guard && { guard }),
  });
  engines.push(engine);
  engine.start();
  return { engine, pub: publicKeyOf(priv), bridge: br, got };
}

async function until(what: string, cond: () => boolean, net: FakeUdpNetwork): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (cond()) return;
    await net.settle(5);
  }
  throw new Error(`never happened: ${what}`);
}

describe('segment guard: frames carrying their own VLAN tag', () => {
  it('are dropped and counted both ways at a guarded appliance; untagged frames cross', async () => {
    const net = new FakeUdpNetwork();
    const tenant = site(net, '192.0.2.1'); // unguarded: it sends whatever its side gives it
    const sp = site(net, '192.0.2.2', innerTagGuard);
    tenant.engine.addPeer({ publicKey: sp.pub, endpoint: { address: '192.0.2.2', port: 51820 }, segments: [10] });
    sp.engine.addPeer({ publicKey: tenant.pub, segments: [10] });
    const arp = arpRequest('02:00:00:00:00:01', '10.0.0.1', '10.0.0.2');

    // From the tunnel: an 802.1Q- and an 802.1ad-tagged frame, then a plain one.
    tenant.bridge.write(insertTag(arp, tagWord(210)));
    tenant.bridge.write(insertTag(arp, tagWord(210, TPID_8021AD)));
    tenant.bridge.write(arp);
    await until('the plain frame at the SP', () => sp.got.length === 1, net);
    expect(sp.got).toEqual([arp]);

    // From the SP's local port: a tagged frame never enters the tunnel.
    sp.bridge.write(insertTag(arpRequest('02:00:00:00:00:02', '10.0.0.2', '10.0.0.1'), tagWord(5)));
    sp.bridge.write(arpRequest('02:00:00:00:00:02', '10.0.0.2', '10.0.0.1'));
    await until('the plain reply at the tenant', () => tenant.got.length === 1, net);
    expect(tenant.got.length).toBe(1);

    const seg = sp.engine.status().segments[0]!;
    expect(seg.counters.drops).toEqual({ 'double-tagged': 3 });
    expect(seg.counters).toMatchObject({ fromTunnel: 1, toTunnel: 1 });
    // Dropped frames teach the MAC table nothing.
    expect(seg.macs).toBe(2);
  });
});
