import { describe, expect, it } from 'vitest';
import {
  CT_DELETE, CT_GET, IPPROTO, IPS_DST_NAT, IPS_SRC_NAT, describe as describeEntry, encodeDelete, encodeTuple, matchesConntrack,
  nfgenmsg, parseConntrackMessage, type ConntrackEntry,
} from './conntrack.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** A dump message as the kernel sends it: nfgenmsg, then orig, reply, status, id (all nested with NLA_F_NESTED). */
function kernelMessage(e: ConntrackEntry): Buffer {
  const status = Buffer.from('0800030000000000', 'hex');
  status.writeUInt32BE(e.status, 4);
  const id = Buffer.from('08000c0000000000', 'hex');
  id.writeUInt32BE(e.id, 4);
  return Buffer.concat([nfgenmsg(e.original.family), encodeTuple(1, e.original), encodeTuple(2, e.reply), status, id]);
}

const dnat: ConntrackEntry = {
  id: 0x01020304, status: IPS_DST_NAT | 0x0e, zone: 0,
  original: { family: 4, protocol: IPPROTO.tcp, src: '198.51.100.10', dst: '203.0.113.17', srcPort: 40000, dstPort: 80 },
  reply: { family: 4, protocol: IPPROTO.tcp, src: '10.1.0.10', dst: '198.51.100.10', srcPort: 8080, dstPort: 40000 },
};

describe('ctnetlink encoding', () => {
  it('message types carry the CTNETLINK subsystem in the high byte', () => {
    expect(CT_GET).toBe(0x0101);
    expect(CT_DELETE).toBe(0x0102);
  });

  it('a TCP tuple, byte for byte (nested IP and proto attributes, ports big-endian)', () => {
    expect(hex(encodeTuple(1, dnat.original))).toBe(
      '3400' + '0180' + // CTA_TUPLE_ORIG | NLA_F_NESTED, len 52
      '1400' + '0180' + '0800' + '0100' + 'c633640a' + '0800' + '0200' + 'cb007111' + // CTA_TUPLE_IP: V4_SRC, V4_DST
      '1c00' + '0280' + '0500' + '0100' + '06000000' + '0600' + '0200' + '9c400000' + '0600' + '0300' + '00500000'); // PROTO: NUM, SRC_PORT, DST_PORT
  });

  it('an ICMP tuple carries id, type and code; an IPv6 one the V6 attributes', () => {
    const icmp = hex(encodeTuple(1, { family: 4, protocol: IPPROTO.icmp, src: '10.0.0.1', dst: '10.0.0.2', icmp: { id: 7, type: 8, code: 0 } }));
    expect(icmp).toContain('0600' + '0400' + '00070000'); // ICMP_ID
    expect(icmp).toContain('0500' + '0500' + '08000000'); // ICMP_TYPE
    expect(icmp).toContain('0500' + '0600' + '00000000'); // ICMP_CODE
    const v6 = hex(encodeTuple(2, { family: 6, protocol: IPPROTO.udp, src: '2001:db8::1', dst: '::1', srcPort: 1, dstPort: 2 }));
    expect(v6.slice(4, 8)).toBe('0280');
    expect(v6).toContain('1400' + '0300' + '20010db8000000000000000000000001'); // V6_SRC
    expect(v6).toContain('1400' + '0400' + '00000000000000000000000000000001'); // V6_DST
  });

  it('a delete names the family, the original tuple and the id (big-endian)', () => {
    const d = encodeDelete(dnat);
    expect(hex(d.subarray(0, 4))).toBe('02000000'); // AF_INET, NFNETLINK_V0, res_id 0
    expect(hex(d.subarray(d.length - 8))).toBe('08000c00' + '01020304');
    expect(encodeDelete({ ...dnat, zone: 5 }).includes(Buffer.from('06001200' + '0005', 'hex'))).toBe(true);
  });

  it('parses a dump message back into the entry', () => {
    expect(parseConntrackMessage(kernelMessage(dnat))).toEqual(dnat);
    expect(parseConntrackMessage(Buffer.alloc(3))).toBeUndefined();
    expect(parseConntrackMessage(nfgenmsg(4))).toBeUndefined();
    expect(describeEntry(dnat)).toBe('tcp 198.51.100.10:40000 -> 203.0.113.17:80');
  });
});

describe('matchesConntrack', () => {
  const snat: ConntrackEntry = {
    id: 2, status: IPS_SRC_NAT, zone: 0,
    original: { family: 4, protocol: IPPROTO.udp, src: '10.2.0.10', dst: '198.51.100.10', srcPort: 5000, dstPort: 53 },
    reply: { family: 4, protocol: IPPROTO.udp, src: '198.51.100.10', dst: '203.0.113.18', srcPort: 53, dstPort: 5000 },
  };
  const cases: [string, ConntrackEntry, Parameters<typeof matchesConntrack>[1], boolean][] = [
    ['port mapping: original destination and port', dnat, { protocol: IPPROTO.tcp, original: { dst: '203.0.113.17', dstPort: 80 } }, true],
    ['another port of that address', dnat, { protocol: IPPROTO.tcp, original: { dst: '203.0.113.17', dstPort: 443 } }, false],
    ['another protocol', dnat, { protocol: IPPROTO.udp, original: { dst: '203.0.113.17' } }, false],
    ['whole address, inbound', dnat, { original: { dst: '203.0.113.17' } }, true],
    ['whole address, outbound (SNAT to it)', snat, { reply: { dst: '203.0.113.18' } }, true],
    ['masqueraded from a subnet', snat, { statusAll: IPS_SRC_NAT, originalSrcIn: ['10.2.0.0/24'] }, true],
    ['not NATed', dnat, { statusAll: IPS_SRC_NAT, originalSrcIn: ['198.51.100.0/24'] }, false],
    ['outside the subnet', snat, { originalSrcIn: ['10.3.0.0/24', 'fd00::/64'] }, false],
    ['family', dnat, { family: 6 }, false],
    ['addresses compare as addresses, not text', { ...dnat, original: { ...dnat.original, family: 6, src: '2001:db8::a' } },
      { original: { src: '2001:DB8:0:0::A' } }, true],
  ];
  it.each(cases)('%s', (_what, e, f, want) => {
    expect(matchesConntrack(e, f)).toBe(want);
  });
});
