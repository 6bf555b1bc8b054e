import { describe, expect, it } from 'vitest';
import { arpRequest, parseEthernet } from './ethernet.js';
import {
  TPID_8021AD, TPID_8021Q, TPID_QINQ_LEGACY, carriesTag, etherTypeAt, insertTag, isTagEtherType, isVlanId, stripTag,
  tagTpid, tagVid, tagWord,
} from './vlan.js';

const arp = arpRequest('02:00:00:00:00:01', '10.0.0.1', '10.0.0.2');

describe('VLAN tags', () => {
  it.each([
    [110, TPID_8021Q, 0, 0x8100006e],
    [4094, TPID_8021Q, 0, 0x81000ffe],
    [1, TPID_8021AD, 5, 0x88a8a001],
    [7, TPID_8021Q, 7, 0x8100e007],
  ])('tagWord(%i, %s, %i) = %s and reads back', (vid, tpid, pcp, want) => {
    const t = tagWord(vid, tpid, pcp);
    expect(t).toBe(want);
    expect(tagVid(t)).toBe(vid);
    expect(tagTpid(t)).toBe(tpid);
  });

  it('knows the tag EtherTypes, and nothing else', () => {
    expect([TPID_8021Q, TPID_8021AD, TPID_QINQ_LEGACY].map(isTagEtherType)).toEqual([true, true, true]);
    expect([0x0800, 0x0806, 0x86dd, 0].map(isTagEtherType)).toEqual([false, false, false, false]);
  });

  it('inserts a tag after the MAC addresses and strips it back', () => {
    const tagged = insertTag(arp, tagWord(110));
    expect(tagged.length).toBe(arp.length + 4);
    expect(parseEthernet(tagged)).toMatchObject({ vlans: [110], ethertype: 0x0806 });
    expect(carriesTag(tagged, 0, tagged.length)).toBe(true);
    const back = stripTag(tagged);
    expect(back.tag).toBe(tagWord(110));
    expect(Buffer.from(back.frame).equals(Buffer.from(arp))).toBe(true);
    expect(stripTag(arp).tag).toBe(0);
  });

  it('sees a double-tagged frame as carrying a tag after the outer one is stripped', () => {
    const double = insertTag(insertTag(arp, tagWord(210)), tagWord(110, TPID_8021AD));
    expect(parseEthernet(double)?.vlans).toEqual([110, 210]);
    const { tag, frame } = stripTag(double);
    expect(tagTpid(tag)).toBe(TPID_8021AD);
    expect(carriesTag(frame, 0, frame.length)).toBe(true);
    expect(etherTypeAt(frame, 0)).toBe(TPID_8021Q);
  });

  it('a runt never carries a tag', () => {
    expect(carriesTag(new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x81]), 0, 13)).toBe(false);
    expect(() => insertTag(new Uint8Array(10), tagWord(1))).toThrow(RangeError);
  });

  it.each([[1, true], [4094, true], [0, false], [4095, false], [1.5, false], ['10', false]])('isVlanId(%j) = %s', (v, ok) => {
    expect(isVlanId(v)).toBe(ok);
  });
});
