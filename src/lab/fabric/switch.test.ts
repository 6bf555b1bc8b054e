import { describe, expect, it } from 'vitest';
import { createFakePair, type FakeDevice } from '../../dataplane/fake-device.js';
import { copyFrames } from '../../dataplane/packet-device.js';
import { macBytes, parseEthernet } from '../../protocol/ethernet.js';
import { TPID_8021AD, insertTag, tagWord } from '../../protocol/vlan.js';
import { parseFabricConfig } from './fabric.js';
import { FabricSwitch, type FabricPortConfig } from './switch.js';

/** Lets chains of setImmediate deliveries (fake socket → port → far end) run to the end, however loaded the machine. */
const tick = async (): Promise<void> => { for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r)); };

function frame(dst: string, src: string, marker: number): Uint8Array {
  const f = new Uint8Array(60).fill(marker);
  f.set(macBytes(dst), 0);
  f.set(macBytes(src), 6);
  f[12] = 0x08;
  f[13] = 0x00;
  return f;
}

/** A switch whose ports' far ends (the "hosts") record what they receive. */
function build(ports: FabricPortConfig[], macLimit?: number): { sw: FabricSwitch; host: Map<string, FakeDevice>; got: Map<string, Uint8Array[]> } {
  const host = new Map<string, FakeDevice>();
  const got = new Map<string, Uint8Array[]>();
  const sp = ports.map((cfg) => {
    const [mine, theirs] = createFakePair({ name: `sw-${cfg.name}` }, { name: cfg.name });
    host.set(cfg.name, theirs);
    got.set(cfg.name, []);
    theirs.onBatch((b) => { got.get(cfg.name)!.push(...copyFrames(b)); });
    return { cfg, device: mine };
  });
  const sw = new FabricSwitch('t', sp, macLimit !== undefined ? { macLimit } : {});
  sw.start();
  return { sw, host, got };
}

const B = 'ff:ff:ff:ff:ff:ff';
const M1 = '02:00:00:00:00:01';
const M2 = '02:00:00:00:00:02';

describe('lab fabric switch', () => {
  it('access ports are untagged; trunk ports carry the VLAN tag; VLANs never mix', async () => {
    const { host, got } = build([
      { name: 'a110', mode: 'access', vlan: 110 },
      { name: 'a210', mode: 'access', vlan: 210 },
      { name: 'trunk', mode: 'trunk', vlans: [110, 210] },
      { name: 'only110', mode: 'trunk', vlans: [110] },
    ]);
    host.get('a110')!.write(frame(B, M1, 1));
    await tick();
    expect(got.get('a210')).toEqual([]);
    expect(got.get('trunk')!.map((f) => [parseEthernet(f)?.vlans, f[f.length - 1]])).toEqual([[[110], 1]]);
    expect(got.get('only110')!.map((f) => parseEthernet(f)?.vlans)).toEqual([[110]]);

    host.get('trunk')!.write(insertTag(frame(B, M1, 2), tagWord(210)));
    await tick();
    expect(got.get('a210')!.map((f) => [parseEthernet(f)?.vlans, f[59]])).toEqual([[[], 2]]);
    expect(got.get('a110')!.length).toBe(0);
    expect(got.get('only110')!.length).toBe(1);
  });

  it('learns per VLAN: the same MAC in two VLANs is two hosts', async () => {
    const { sw, host, got } = build([
      { name: 'a110', mode: 'access', vlan: 110 },
      { name: 'b210', mode: 'access', vlan: 210 },
      { name: 'trunk', mode: 'trunk', vlans: 'all' },
    ]);
    host.get('a110')!.write(frame(B, M1, 1));
    host.get('b210')!.write(frame(B, M1, 2));
    await tick();
    got.get('a110')!.length = 0;
    got.get('b210')!.length = 0;
    // Unicast to M1 in VLAN 210 goes to b210 only, not to a110 where M1 lives in VLAN 110.
    host.get('trunk')!.write(insertTag(frame(M1, M2, 3), tagWord(210)));
    await tick();
    expect(got.get('b210')!.map((f) => f[59])).toEqual([3]);
    expect(got.get('a110')).toEqual([]);
    expect(sw.status().macs).toEqual({ 110: 1, 210: 2 });
  });

  it('keeps an inner tag as payload: a double-tagged frame stays double-tagged on trunks', async () => {
    const { host, got } = build([
      { name: 'in', mode: 'trunk', vlans: [110] },
      { name: 'out', mode: 'trunk', vlans: 'all' },
      { name: 'a210', mode: 'access', vlan: 210 },
    ]);
    host.get('in')!.write(insertTag(insertTag(frame(B, M1, 4), tagWord(210)), tagWord(110)));
    await tick();
    expect(got.get('out')!.map((f) => parseEthernet(f)?.vlans)).toEqual([[110, 210]]);
    expect(got.get('a210')).toEqual([]);
  });

  it('drops and counts: tagged on access, VLAN not allowed, untagged on a trunk without native VLAN', async () => {
    const { sw, host, got } = build([
      { name: 'acc', mode: 'access', vlan: 10 },
      { name: 'tr', mode: 'trunk', vlans: [10] },
      { name: 'nat', mode: 'trunk', vlans: [10], native: 99 },
      { name: 'a99', mode: 'access', vlan: 99 },
    ]);
    host.get('acc')!.write(insertTag(frame(B, M1, 1), tagWord(10)));
    host.get('tr')!.write(insertTag(frame(B, M1, 2), tagWord(20)));
    host.get('tr')!.write(frame(B, M1, 3));
    host.get('tr')!.write(insertTag(frame(B, M1, 5), tagWord(10, TPID_8021AD)));
    host.get('nat')!.write(frame(B, M2, 4));
    await tick();
    const drops = Object.fromEntries(sw.status().ports.map((p) => [p.name, p.drops]));
    expect(drops).toEqual({ acc: { 'tagged-on-access': 1 }, tr: { 'vlan-not-allowed': 1, 'untagged-on-trunk': 2 }, nat: {}, a99: {} });
    // The native VLAN's untagged frame reached VLAN 99's access port, untagged.
    expect(got.get('a99')!.map((f) => [parseEthernet(f)?.vlans, f[59]])).toEqual([[[], 4]]);
  });

  it('caps learning per VLAN and floods what it could not learn', async () => {
    const { sw, host, got } = build([
      { name: 'a', mode: 'access', vlan: 10 },
      { name: 'b', mode: 'access', vlan: 10 },
    ], 16);
    for (let i = 0; i < 100; i++) host.get('a')!.write(frame(B, `02:00:00:00:01:${i.toString(16).padStart(2, '0')}`, 1));
    await tick();
    expect(sw.status()).toMatchObject({ macs: { 10: 16 }, refused: 84 });
    expect(got.get('b')!.length).toBe(100);
  });
});

describe('lab fabric switch: ports at run time', () => {
  it('a port added while running joins its VLAN; a removed one gets nothing more and its MACs are forgotten', async () => {
    const { sw, host, got } = build([
      { name: 'trunk', mode: 'trunk', vlans: 'all' },
      { name: 'other', mode: 'access', vlan: 200 },
    ]);
    const [mine, theirs] = createFakePair({ name: 'sw-vm' }, { name: 'vm' });
    const vmGot: Uint8Array[] = [];
    theirs.onBatch((b) => { vmGot.push(...copyFrames(b)); });
    sw.addPort({ cfg: { name: 'vm', mode: 'access', vlan: 100 }, device: mine });
    expect(sw.portNames()).toEqual(['trunk', 'other', 'vm']);
    theirs.write(frame(B, M1, 1));
    await tick();
    expect(got.get('trunk')!.map((f) => parseEthernet(f)?.vlans)).toEqual([[100]]);
    expect(got.get('other')).toEqual([]);
    host.get('trunk')!.write(insertTag(frame(M1, M2, 2), tagWord(100)));
    await tick();
    expect(vmGot.map((f) => f[59])).toEqual([2]);
    expect(sw.status().macs).toEqual({ 100: 2 });

    expect(sw.removePort('vm')).toBe(true);
    expect(sw.removePort('vm')).toBe(false);
    expect(sw.status().macs).toEqual({ 100: 1 });
    expect(sw.status().ports.map((p) => p.name)).toEqual(['trunk', 'other']);
    // A new port takes the free place; frames for the old port's MAC are flooded to the VLAN, not sent to the newcomer of another VLAN.
    const [mine2, theirs2] = createFakePair({ name: 'sw-vm2' }, { name: 'vm2' });
    const vm2Got: Uint8Array[] = [];
    theirs2.onBatch((b) => { vm2Got.push(...copyFrames(b)); });
    sw.addPort({ cfg: { name: 'vm2', mode: 'access', vlan: 300 }, device: mine2 });
    host.get('trunk')!.write(insertTag(frame(M1, M2, 3), tagWord(100)));
    await tick();
    expect(vm2Got).toEqual([]);
    expect(() => { sw.addPort({ cfg: { name: 'vm2', mode: 'access', vlan: 300 }, device: mine2 }); }).toThrow(/exists/);
  });
});

describe('lab fabric config', () => {
  it('accepts switches of access and trunk ports in namespaces', () => {
    const c = parseFabricConfig({ switches: [{ name: 'sp', macLimit: 100, ports: [
      { name: 'spa', netns: 'ns-a', interface: 'trunk0', mode: 'trunk', vlans: 'all' },
      { name: 'h1', netns: 'ns-h1', interface: 'eth0', mode: 'access', vlan: 110 },
    ] }] });
    expect(c.switches[0]!.ports.map((p) => p.mode)).toEqual(['trunk', 'access']);
  });
  it.each([
    [{ switches: [{ name: 'x', ports: [{ name: 'p', interface: 'e', mode: 'access', vlan: 0 }] }] }, /ports\[0\]\.vlan/],
    [{ switches: [{ name: 'x', ports: [{ name: 'p', interface: 'e', mode: 'hybrid' }] }] }, /ports\[0\]\.mode/],
    [{ switches: [{ name: 'x', ports: [{ name: 'p', interface: 'e', mode: 'trunk', vlans: [1, 5000] }] }] }, /ports\[0\]\.vlans/],
    [{ switches: [{ name: 'x', ports: [{ name: 'p', interface: 'e', mode: 'access', vlan: 1 }, { name: 'q', interface: 'e', mode: 'access', vlan: 2 }] }] }, /already a port/],
    [{ switches: {} }, /switches: must be an array/],
  ])('refuses %j', (raw, msg) => {
    expect(() => parseFabricConfig(raw)).toThrow(msg);
  });
});
