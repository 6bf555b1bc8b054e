/**
 * The segment guards under attack, in the two-tenant world of
 * segments-world.ts (same subnets, MACs and segment ids; SP trunks that
 * carry every VLAN of the fabric), plus:
 *
 *   atk   on the SP fabric, trunk port (VLANs 110 and 999): injects double-tagged and foreign-VLAN frames
 *   atka  on tenant A's site switch, trunk port (VLAN 10): injects double-tagged frames on the production side
 *   rogue on the WAN, 192.0.2.99: an authenticated tunnel peer of SP-A (a nea engine run by this test),
 *         allowed segment 20 only, that also sends frames for segment 10
 *
 * Every injected frame carries a unique marker; "none delivered" is checked
 * with tcpdump captures on the hosts, "each counted" with the appliances'
 * status, and "it did reach the appliance" with the fabric's port counters.
 * Last, a MAC flood of 100,000 random source MACs from one host: the
 * learning tables stay at their cap and other traffic keeps flowing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFakePair, type FakeDevice } from '../src/dataplane/fake-device.js';
import { TunnelEngine } from '../src/dataplane/tunnel/engine.js';
import { openTunnelSocket } from '../src/dataplane/tunnel/udp-socket.js';
import { generatePrivateKey, publicKeyOf } from '../src/dataplane/wg/crypto.js';
import { withNetns } from '../src/netconfig/netns.js';
import { createLogger } from '../src/shared/log.js';
import { waitFor, type Capture } from './harness.js';
import {
  HOSTS, HOST_PLAN, PORT, ROGUE_WAN_IP, TENANTS, World, injectFrames, kernelHasVlanDevices, markerFrame, ping, readCapture,
  type ApplianceRole, type Tenant,
} from './segments-world.js';

const kernelVlans = await kernelHasVlanDevices();
const MAC_LIMIT = 1024;
const FLOOD = 100_000;

for (const mode of ['userspace', 'kernel'] as const) {
  describe.skipIf(mode === 'kernel' && !kernelVlans)(`segment guards under attack (${mode} VLANs)`, () => {
    const rogueKey = generatePrivateKey();
    const world = new World(`guard-${mode}`, { vlanDevices: mode, macLimit: MAC_LIMIT, roguePublicKey: publicKeyOf(rogueKey), attackers: true });
    const caps = new Map<string, Capture>();
    let rogue: TunnelEngine | undefined;
    const rogueSide = new Map<number, FakeDevice>();

    const trunkDrops = (t: Tenant, r: ApplianceRole, why: string): number => world.status(t, r)?.trunks[0]?.drops[why] ?? 0;
    const segDrops = (t: Tenant, r: ApplianceRole, seg: number, why: string): number =>
      world.status(t, r)?.tunnel?.segments.find((s) => s.id === seg)?.counters.drops[why] ?? 0;
    const fabricTx = (sw: string, port: string): number =>
      world.fabricStatus()?.switches.find((s) => s.name === sw)?.ports.find((p) => p.name === port)?.txFrames ?? 0;
    /** Hosts (tenant/host) whose capture holds `marker` (hex). */
    const seenAt = async (marker: string): Promise<string[]> => {
      await new Promise((r) => setTimeout(r, 300));
      const out: string[] = [];
      for (const [k, c] of caps) if ((await readCapture(c.file)).some((p) => p.hex.includes(marker))) out.push(k);
      return out.sort();
    };

    beforeAll(async () => {
      await world.build();
      for (const t of TENANTS) for (const h of HOSTS) caps.set(`${t}/${h}`, await world.host(t, h).capture(h === 'gw' ? 'any' : 'eth0'));
      await world.waitForTunnels();
      // The rogue: a real nea engine, authenticated by SP-A for segment 20 only, believing it may send segment 10 too.
      const devices = new Map<number, FakeDevice>();
      for (const id of [10, 20]) {
        const [app, br] = createFakePair({ name: `rogue${id}` }, { name: `rbr${id}` });
        devices.set(id, app);
        rogueSide.set(id, br);
        br.onBatch(() => undefined);
      }
      const socket = withNetns(world.rogue!.name, () => openTunnelSocket({ address: ROGUE_WAN_IP, port: PORT, wanMtu: 1500 }));
      rogue = new TunnelEngine({ privateKey: rogueKey, socket, segments: devices, log: createLogger({ level: 'error' }) });
      rogue.start();
      rogue.addPeer({ publicKey: world.appliance('a', 'sp').publicKey, endpoint: { address: '192.0.2.12', port: PORT }, segments: [10, 20] });
    }, 120_000);

    afterAll(async () => {
      rogue?.stop();
      for (const d of rogueSide.values()) d.close();
      expect(await world.cleanup()).toEqual([]);
    });

    it('double-tagged frames on the SP trunk (outer VLAN 110 = A web, inner 210 = B web, 802.1Q or 802.1ad inside): SP-A drops and counts each; none reaches a host across the tunnel or of tenant B', async () => {
      const before = { dt: trunkDrops('a', 'sp', 'double-tagged'), tx: fabricTx('sp', 'a-sp') };
      await injectFrames(world.attackers.get('atk')!, 'eth0', [
        markerFrame('02:00:00:00:66:01', 'd0d0d0d0d0d0d0d1', ['8100006e', '810000d2']),
        markerFrame('02:00:00:00:66:01', 'd0d0d0d0d0d0d0d1', ['8100006e', '88a800d2']),
      ], 15);
      await waitFor('SP-A counted 30 double-tagged frames', () => trunkDrops('a', 'sp', 'double-tagged') >= before.dt + 30);
      expect(trunkDrops('a', 'sp', 'double-tagged')).toBe(before.dt + 30);
      await waitFor('the switch handed them to SP-A', () => fabricTx('sp', 'a-sp') >= before.tx + 30); // its status is written every 500 ms
      // a-cweb shares VLAN 110 with the attacker on the SP's own switch; nobody else may see the frames.
      expect(await seenAt('d0d0d0d0d0d0d0d1')).toEqual(['a/cweb']);
    });

    it('double-tagged frames on a production trunk (outer 10 = web, inner 20 = db): the tenant appliance drops and counts each; the db segment and the cloud never see them', async () => {
      const before = trunkDrops('a', 'ta', 'double-tagged');
      await injectFrames(world.attackers.get('atka')!, 'eth0', [markerFrame('02:00:00:00:66:02', 'd0d0d0d0d0d0d0d2', ['8100000a', '81000014'])], 20);
      await waitFor('tenant A counted 20 double-tagged frames', () => trunkDrops('a', 'ta', 'double-tagged') >= before + 20);
      expect(trunkDrops('a', 'ta', 'double-tagged')).toBe(before + 20);
      // The site's own switch floods VLAN 10 to a-sweb and the gateway's web port; nothing beyond.
      expect(await seenAt('d0d0d0d0d0d0d0d2')).toEqual(['a/gw', 'a/sweb']);
    });

    it('a frame carrying its own tag inside a segment (local access port, or from the tunnel) is dropped by the segment guard and counted', async () => {
      // Local side: into tenant B's web bridge (access backing web0), as if a port of it had sent it.
      const before = segDrops('b', 'ta', 10, 'double-tagged');
      await injectFrames(world.appliance('b', 'ta').ns, 'nea-br10', [markerFrame('02:00:00:00:66:03', 'd0d0d0d0d0d0d0d3', ['81000014'])], 10);
      await waitFor('tenant B counted 10', () => segDrops('b', 'ta', 10, 'double-tagged') >= before + 10);
      expect(segDrops('b', 'ta', 10, 'double-tagged')).toBe(before + 10);
      // From the tunnel: the rogue sends tagged frames on its own segment 20.
      await waitFor('the rogue has a session with SP-A', () => world.status('a', 'sp')?.tunnel?.peers[1]?.lastHandshakeAgoMs != null || (rogueSide.get(20)!.write(Buffer.from(markerFrame('02:00:00:00:66:04', '00', []), 'hex')) && false), { timeoutMs: 15_000 });
      const beforeT = segDrops('a', 'sp', 20, 'double-tagged');
      for (let i = 0; i < 5; i++) rogueSide.get(20)!.write(Buffer.from(markerFrame('02:00:00:00:66:04', 'd0d0d0d0d0d0d0d4', ['810000d2']), 'hex'));
      await waitFor('SP-A counted 5 from the tunnel', () => segDrops('a', 'sp', 20, 'double-tagged') >= beforeT + 5);
      expect(await seenAt('d0d0d0d0d0d0d0d3')).toEqual([]);
      expect(await seenAt('d0d0d0d0d0d0d0d4')).toEqual([]);
    });

    it('frames with a foreign VLAN id on the SP trunks are dropped and counted by both SP appliances, delivered nowhere', async () => {
      const before = { a: trunkDrops('a', 'sp', 'foreign-vlan'), b: trunkDrops('b', 'sp', 'foreign-vlan'), txa: fabricTx('sp', 'a-sp'), txb: fabricTx('sp', 'b-sp') };
      await injectFrames(world.attackers.get('atk')!, 'eth0', [markerFrame('02:00:00:00:66:05', 'd0d0d0d0d0d0d0d5', ['810003e7'])], 25);
      await waitFor('both SPs counted 25 foreign-VLAN frames', () =>
        trunkDrops('a', 'sp', 'foreign-vlan') >= before.a + 25 && trunkDrops('b', 'sp', 'foreign-vlan') >= before.b + 25);
      await waitFor('the switch handed them to both SPs', () => fabricTx('sp', 'a-sp') - before.txa >= 25 && fabricTx('sp', 'b-sp') - before.txb >= 25);
      expect(await seenAt('d0d0d0d0d0d0d0d5')).toEqual([]);
    });

    it('an authenticated peer\'s frames for a segment it does not own are dropped and counted; its own segment\'s frames are delivered', async () => {
      const peer = (): { drops: Record<string, number> } | undefined => world.status('a', 'sp')?.tunnel?.peers[1]?.counters;
      const before = peer()?.drops['segment-not-owned'] ?? 0;
      for (let i = 0; i < 20; i++) rogueSide.get(10)!.write(Buffer.from(markerFrame('02:00:00:00:66:06', 'd0d0d0d0d0d0d0d6'), 'hex'));
      for (let i = 0; i < 5; i++) rogueSide.get(20)!.write(Buffer.from(markerFrame('02:00:00:00:66:07', 'd0d0d0d0d0d0d0d7'), 'hex'));
      await waitFor('SP-A counted 20 frames of a segment the rogue does not own', () => (peer()?.drops['segment-not-owned'] ?? 0) >= before + 20);
      expect(peer()!.drops['segment-not-owned']).toBe(before + 20);
      expect(await seenAt('d0d0d0d0d0d0d0d6')).toEqual([]);
      // Segment 20 is the rogue's: its frames reach SP-A's db segment (and only that: a frame from one
      // peer is never forwarded to another peer, so tenant A's production site does not see it).
      expect(await seenAt('d0d0d0d0d0d0d0d7')).toEqual(['a/cdb']);
    });

    it('a MAC seen on the local side and through the tunnel within a second is a flap: counted and logged', async () => {
      const mac = '02:00:00:00:66:08';
      const before = world.status('a', 'ta')!.tunnel!.segments.find((s) => s.id === 10)!.macCounters.flaps;
      for (let i = 0; i < 5; i++) {
        await injectFrames(world.attackers.get('atka')!, 'eth0', [markerFrame(mac, 'd0d0d0d0d0d0d0d8', ['8100000a'])]);
        await injectFrames(world.attackers.get('atk')!, 'eth0', [markerFrame(mac, 'd0d0d0d0d0d0d0d8', ['8100006e'])]);
      }
      await waitFor('tenant A counted flaps', () => world.status('a', 'ta')!.tunnel!.segments.find((s) => s.id === 10)!.macCounters.flaps > before);
      expect(world.appliance('a', 'ta').proc!.stderr).toMatch(/MAC flapping between the local side and the tunnel .*segment=10 mac=02:00:00:00:66:08/);
    });

    it(`a flood of ${FLOOD.toLocaleString('en')} random source MACs from one host: learning stays at its cap (${MAC_LIMIT}), other traffic keeps flowing`, async () => {
      const probes = [
        ping(world.host('b', 'sweb'), HOST_PLAN.cweb.ip, ['-c', '30', '-i', '0.1', '-W', '1']), // the other tenant
        ping(world.host('a', 'sdb'), HOST_PLAN.cdb.ip, ['-c', '30', '-i', '0.1', '-W', '1']), // same tenant, other segment
        ping(world.host('a', 'cweb'), HOST_PLAN.sweb.ip, ['-c', '30', '-i', '0.1', '-W', '1']), // the flooded segment, known MACs
      ];
      const t0 = Date.now();
      await world.host('a', 'sweb').exec('python3', ['-c', [
        'import socket, os, time',
        's = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(("eth0", 0))',
        'dst = bytes.fromhex("02ffff000001")  # unknown unicast: flooded like a broadcast',
        'body = bytes.fromhex("88b5") + b"\\xf1" * 46',
        `for burst in range(${FLOOD / 1000}):`,
        '    for _ in range(1000):',
        '        src = bytearray(os.urandom(6)); src[0] = (src[0] & 0xfe) | 0x02',
        '        s.send(dst + bytes(src) + body)',
        '    time.sleep(0.01)',
      ].join('\n')], { timeoutMs: 60_000 });
      const floodMs = Date.now() - t0;
      const results = await Promise.all(probes);
      const received = results.map((r) => Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0));
      const seg = (t: Tenant, r: ApplianceRole): { macs: number; refused: number } => {
        const s = world.status(t, r)!.tunnel!.segments.find((g) => g.id === 10)!;
        return { macs: s.macs, refused: s.macCounters.refused };
      };
      await waitFor('the flood reached SP-A', () => seg('a', 'sp').macs === MAC_LIMIT, { timeoutMs: 20_000 });
      const ta = seg('a', 'ta');
      const sp = seg('a', 'sp');
      // The caps hold exactly, and many more MACs than the cap were offered and refused.
      expect(ta.macs).toBe(MAC_LIMIT);
      expect(sp.macs).toBe(MAC_LIMIT);
      expect(ta.refused).toBeGreaterThan(10 * MAC_LIMIT);
      // Tenant B never saw a frame of it (its table holds its few hosts only).
      expect(world.status('b', 'sp')!.tunnel!.segments.find((g) => g.id === 10)!.macs).toBeLessThan(10);
      // Traffic kept flowing during the flood: the other tenant's (at least 80 % of the pings answered)
      // and the same tenant's other segment (70 %: it shares the flooded appliances' trunk socket and
      // tunnel, whose queues the flood fills); in the flooded segment itself it slows but goes on.
      // Measured on 2 vCPUs: 30, 27-29, 23-28 of 30, with 70-80 % of the 100,000 frames crossing.
      const why = (i: number): string => `probe ${i} during a ${floodMs} ms flood: ${results[i]!.stdout.split('\n').slice(-3).join(' ')}`;
      expect(received[0], why(0)).toBeGreaterThanOrEqual(24);
      expect(received[1], why(1)).toBeGreaterThanOrEqual(21);
      expect(received[2], why(2)).toBeGreaterThanOrEqual(10);
      // And still flows; the tables stay at the cap.
      for (const [h, to] of [[world.host('a', 'sweb'), HOST_PLAN.cweb.ip], [world.host('b', 'sweb'), HOST_PLAN.cweb.ip]] as const) {
        expect((await ping(h, to, ['-c', '2'])).code).toBe(0);
      }
      expect(seg('a', 'ta').macs).toBe(MAC_LIMIT);
    }, 120_000);
  });
}
