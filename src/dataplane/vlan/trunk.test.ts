import { describe, expect, it } from 'vitest';
import { arpRequest, parseEthernet } from '../../protocol/ethernet.js';
import { TPID_8021AD, insertTag, tagWord } from '../../protocol/vlan.js';
import { createLogger } from '../../shared/log.js';
import { createFakePair, type FakeDevice } from '../fake-device.js';
import { createFakePacketPair, type FakePacketSocket } from '../fake-packet-socket.js';
import { copyFrames, type PacketBatch } from '../packet-device.js';
import { VlanTrunk } from './trunk.js';

const log = createLogger({ sink: () => undefined });
/** Lets chains of setImmediate deliveries (fake socket → port → far end) run to the end, however loaded the machine. */
const tick = async (): Promise<void> => { for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r)); };

function frameFrom(src: string, marker: number): Uint8Array {
  const f = arpRequest(src, '10.0.0.1', '10.0.0.2');
  f[59] = marker;
  return f;
}

interface World {
  trunk: VlanTrunk;
  /** The switch side of the trunk wire. */
  sw: FakePacketSocket;
  /** The appliance side of the trunk wire (the trunk's socket). */
  mine: FakePacketSocket;
  /** What each segment's bridge side received from its port. */
  got: Map<number, Uint8Array[]>;
  /** The bridge side of each segment's port. */
  bridge: Map<number, FakeDevice>;
}

function world(): World {
  const [mine, sw] = createFakePacketPair({ name: 'trunk0' }, { name: 'switch' });
  const got = new Map<number, Uint8Array[]>();
  const bridge = new Map<number, FakeDevice>();
  const ports = [[110, 10], [120, 20]].map(([vlan, segment]) => {
    const [port, br] = createFakePair({ name: `nea-v${segment!}` }, { name: `br${segment!}` });
    got.set(segment!, []);
    bridge.set(segment!, br);
    br.onBatch((b: PacketBatch) => { got.get(segment!)!.push(...copyFrames(b)); });
    return { vlan: vlan!, segment: segment!, device: port };
  });
  const trunk = new VlanTrunk({ trunk: 'trunk0', socket: mine, ports, log });
  trunk.start();
  sw.onBatch(() => undefined);
  return { trunk, sw, mine, got, bridge };
}

describe('user-space VLAN trunk', () => {
  it('untags trunk frames into the segment of their VLAN, and tags segment frames for the trunk', async () => {
    const w = world();
    w.sw.send(frameFrom('02:00:00:00:00:01', 1), tagWord(110));
    w.sw.send(frameFrom('02:00:00:00:00:02', 2), tagWord(120));
    await tick();
    expect(w.got.get(10)!.map((f) => f[59])).toEqual([1]);
    expect(w.got.get(20)!.map((f) => f[59])).toEqual([2]);
    expect(parseEthernet(w.got.get(10)![0]!)?.vlans).toEqual([]);

    w.bridge.get(20)!.write(frameFrom('02:00:00:00:00:03', 3));
    w.bridge.get(10)!.write(frameFrom('02:00:00:00:00:04', 4));
    await tick();
    // What the switch saw on the wire, with an independent parser.
    const onWire = w.mine.wire;
    expect(onWire.map((f) => [parseEthernet(f)?.vlans, f[63]])).toEqual([[[120], 3], [[110], 4]]);
    const s = w.trunk.status();
    expect(s).toMatchObject({ implementation: 'userspace', vlans: [110, 120], rxFrames: 2, txFrames: 2 });
    expect(s.ports.map((p) => [p.vlan, p.segment, p.port, p.fromTrunk, p.toTrunk])).toEqual([[110, 10, 'nea-v10', 1, 1], [120, 20, 'nea-v20', 1, 1]]);
    expect(Object.values(s.drops).every((n) => n === 0)).toBe(true);
  });

  it('drops and counts untagged, foreign-VLAN, foreign-TPID and double-tagged trunk frames; none reaches a segment', async () => {
    const w = world();
    const f = frameFrom('02:00:00:00:00:01', 9);
    w.mine.inject(f);
    w.mine.inject(insertTag(f, tagWord(0)));
    w.mine.inject(insertTag(f, tagWord(210)));
    w.mine.inject(insertTag(f, tagWord(999)));
    w.mine.inject(insertTag(f, tagWord(110, TPID_8021AD)));
    w.mine.inject(insertTag(insertTag(f, tagWord(120)), tagWord(110)));
    w.mine.inject(insertTag(insertTag(f, tagWord(210, TPID_8021AD)), tagWord(120)));
    w.mine.inject(insertTag(f, tagWord(110)));
    await tick();
    expect(w.got.get(10)!.length).toBe(1);
    expect(w.got.get(20)!.length).toBe(0);
    expect(w.trunk.status().drops).toEqual({ untagged: 2, 'foreign-tpid': 1, 'foreign-vlan': 2, 'double-tagged': 2, runt: 0 });
  });

  it('never sends a segment frame that carries its own tag (it would be double-tagged on the trunk)', async () => {
    const w = world();
    const f = frameFrom('02:00:00:00:00:05', 5);
    w.bridge.get(10)!.write(insertTag(f, tagWord(120)));
    w.bridge.get(10)!.write(insertTag(f, tagWord(120, TPID_8021AD)));
    w.bridge.get(10)!.write(f);
    await tick();
    const wire = w.mine.wire;
    expect(wire.map((x) => parseEthernet(x)?.vlans)).toEqual([[110]]);
    expect(w.trunk.status().ports[0]!.drops).toEqual({ 'double-tagged': 2 });
  });

  it('counts what the trunk refuses, and keeps going', async () => {
    const w = world();
    const mine = w.mine;
    mine.setWritable(false);
    w.bridge.get(10)!.write(frameFrom('02:00:00:00:00:06', 6));
    await tick();
    mine.setWritable(true);
    w.bridge.get(10)!.write(frameFrom('02:00:00:00:00:06', 7));
    await tick();
    expect(w.trunk.status().ports[0]).toMatchObject({ toTrunk: 1, drops: { 'trunk-send-refused': 1 } });
  });

  it('refuses a VLAN listed twice', () => {
    const [mine] = createFakePacketPair();
    const [a] = createFakePair();
    const [b] = createFakePair();
    expect(() => new VlanTrunk({ trunk: 't', socket: mine, log, ports: [{ vlan: 5, segment: 1, device: a }, { vlan: 5, segment: 2, device: b }] }))
      .toThrow(/VLAN 5 is on trunk t twice/);
  });
});
