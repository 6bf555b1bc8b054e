import { describe, expect, it } from 'vitest';
import { ifla } from 'netlink';
import { ADDRESSING, nsName, ownerPid, runId, vxlanLinkInfo } from './topology.js';

describe('names', () => {
  it('carry the owner pid in base 36, which the sweeper reads back', () => {
    expect(runId(123456)).toBe('2n9c');
    expect(nsName('2n9c', 'a1')).toBe('nb-2n9c-a1');
    expect(ownerPid('nb-2n9c-a1')).toBe(123456);
    expect(ownerPid('nea-bench-2n9c-openvpn-AbC123')).toBe(123456);
    expect(ownerPid('nbw2n9c-a.sock')).toBe(123456);
  });

  it('ignore names that are not the bench\'s', () => {
    for (const n of ['nt-87m_1-ex', 'q-sp', 'nea-demo', 'nb-', 'wg0.sock', 'nea-bench']) expect(ownerPid(n)).toBeUndefined();
  });
});

describe('addressing', () => {
  it('puts L2 hosts in one subnet and L3 hosts in two routed halves', () => {
    expect(ADDRESSING.L2.h1Subnet).toBe(ADDRESSING.L2.h2Subnet);
    expect([ADDRESSING.L3.h1Subnet, ADDRESSING.L3.h2Subnet]).toEqual(['198.51.100.0/25', '198.51.100.128/25']);
  });
});

describe('vxlanLinkInfo', () => {
  it('encodes kind vxlan with VNI, endpoints and port', () => {
    const info = ifla.parseInfo(vxlanLinkInfo({ vni: 10, local: '192.0.2.1', remote: '192.0.2.2', port: 4789, mtu: 1500 }));
    expect(info.kind).toBe('vxlan');
    const v = ifla.parseVxlan(info.data!);
    expect(v.id).toBe(10);
    expect([...v.local!]).toEqual([192, 0, 2, 1]);
    expect([...v.group!]).toEqual([192, 0, 2, 2]);
    expect(v.port!.readUInt16BE(0)).toBe(4789);
    expect(v.learning).toBe(1);
  });
});
