import { describe, expect, it } from 'vitest';
import { arpRequest } from '../../protocol/ethernet.js';
import { TPID_8021AD, TPID_8021Q, TPID_QINQ_LEGACY, insertTag, stripTag, tagWord } from '../../protocol/vlan.js';
import { classifyTrunkFrame, vlanTable } from './classify.js';
import { BPF, MAX_FILTER_VLANS, encodeBpf, runBpf, trunkMonitorFilter } from './bpf.js';

const arp = arpRequest('02:00:00:00:00:01', '10.0.0.1', '10.0.0.2');
const ours = [110, 120];
const table = vlanTable(ours);

/** A frame as it is on the wire (tags in the bytes), as the kernel hands it to a packet socket. */
function received(wire: Uint8Array): { tag: number; frame: Uint8Array } {
  return stripTag(wire);
}

const cases: [string, Uint8Array, number | string][] = [
  ['VLAN 110', insertTag(arp, tagWord(110)), 110],
  ['VLAN 120 with priority 5', insertTag(arp, tagWord(120, TPID_8021Q, 5)), 120],
  ['untagged', arp, 'untagged'],
  ['priority-tagged (VLAN 0)', insertTag(arp, tagWord(0)), 'untagged'],
  ['a foreign VLAN', insertTag(arp, tagWord(210)), 'foreign-vlan'],
  ['VLAN 4095', insertTag(arp, tagWord(4095)), 'foreign-vlan'],
  ['an 802.1ad S-tag of an own VLAN id', insertTag(arp, tagWord(110, TPID_8021AD)), 'foreign-tpid'],
  ['a 0x9100 outer tag', insertTag(arp, tagWord(110, TPID_QINQ_LEGACY)), 'foreign-tpid'],
  ['double-tagged 802.1Q in 802.1Q', insertTag(insertTag(arp, tagWord(210)), tagWord(110)), 'double-tagged'],
  ['double-tagged 802.1ad inside', insertTag(insertTag(arp, tagWord(210, TPID_8021AD)), tagWord(110)), 'double-tagged'],
  ['double-tagged 0x9100 inside', insertTag(insertTag(arp, tagWord(5, TPID_QINQ_LEGACY)), tagWord(120)), 'double-tagged'],
  ['double-tagged inside a foreign VLAN', insertTag(insertTag(arp, tagWord(110)), tagWord(210)), 'foreign-vlan'],
];

describe('trunk guard', () => {
  it.each(cases)('%s -> %s', (_what, wire, want) => {
    const { tag, frame } = received(wire);
    expect(classifyTrunkFrame(tag, frame, 0, frame.length, table)).toBe(want);
  });

  it('a runt is a runt whatever its tag', () => {
    expect(classifyTrunkFrame(tagWord(110), new Uint8Array(13), 0, 13, table)).toBe('runt');
  });

  it('reads frames at an offset of a slab', () => {
    const slab = new Uint8Array(4096);
    const { tag, frame } = received(insertTag(insertTag(arp, tagWord(210)), tagWord(110)));
    slab.set(frame, 2048);
    expect(classifyTrunkFrame(tag, slab, 2048, frame.length, table)).toBe('double-tagged');
  });
});

describe('trunk monitor BPF filter', () => {
  const prog = trunkMonitorFilter(ours);

  it.each(cases)('%s: passes exactly what the guard drops', (_what, wire, want) => {
    const { tag, frame } = received(wire);
    const len = runBpf(prog, frame, { tag });
    expect(len > 0).toBe(typeof want === 'string');
    if (len > 0) expect(len).toBe(Math.min(64, frame.length));
  });

  it('keeps every jump inside the program and within 8 bits', () => {
    for (const p of [trunkMonitorFilter([1]), trunkMonitorFilter(Array.from({ length: MAX_FILTER_VLANS }, (_, i) => i + 1))]) {
      p.forEach((insn, i) => {
        if (insn.code === BPF.JEQ_K) {
          expect(insn.jt).toBeLessThan(256);
          expect(i + 1 + insn.jt).toBeLessThan(p.length);
          expect(i + 1 + insn.jf).toBeLessThan(p.length);
        }
      });
      expect(p[p.length - 1]!.code).toBe(BPF.RET_K);
    }
  });

  it('with too many VLANs to list, passes everything (the monitor classifies)', () => {
    const p = trunkMonitorFilter(Array.from({ length: MAX_FILTER_VLANS + 1 }, (_, i) => i + 1));
    expect(p).toEqual([{ code: BPF.RET_K, jt: 0, jf: 0, k: 64 }]);
  });

  it('encodes struct sock_filter little-endian, 8 bytes each', () => {
    const b = Buffer.from(encodeBpf([{ code: 0x15, jt: 3, jf: 4, k: 0x8100 }, { code: 0x06, jt: 0, jf: 0, k: 0xfffff030 }]));
    expect(b.toString('hex')).toBe('1500030400810000' + '0600000030f0ffff');
  });
});
