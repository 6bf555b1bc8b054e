import { describe, expect, it } from 'vitest';
import { arpAnnouncement } from './ethernet.js';
import { icmpv6Checksum, unsolicitedNeighbourAdvert } from './ndp.js';

const v6 = (hex: string): Uint8Array => Uint8Array.from(Buffer.from(hex, 'hex'));

describe('announcements', () => {
  it('gratuitous ARP: a broadcast request with sender IP = target IP and a zero target MAC', () => {
    const f = arpAnnouncement('02:00:00:00:00:01', '10.1.0.1');
    expect(Buffer.from(f).toString('hex')).toBe(
      'ffffffffffff' + '020000000001' + '0806' + '0001' + '0800' + '06' + '04' + '0001' +
      '020000000001' + '0a010001' + '000000000000' + '0a010001' + '00'.repeat(18));
  });

  it('unsolicited NA: byte for byte, to all nodes, hop limit 255, Override and Router set', () => {
    const addr = v6('fd000001000000000000000000000001'); // fd00:1::1
    const f = unsolicitedNeighbourAdvert('02:00:00:00:00:01', addr, { router: true });
    const hex = Buffer.from(f).toString('hex');
    expect(f.length).toBe(86);
    expect(hex.slice(0, 28)).toBe('333300000001' + '020000000001' + '86dd');
    // IPv6: version 6, payload 32, next header 58, hop limit 255, src, dst ff02::1
    expect(hex.slice(28, 108)).toBe('60000000' + '0020' + '3a' + 'ff' + 'fd000001000000000000000000000001' + 'ff020000000000000000000000000001');
    // ICMPv6: type 136, code 0, checksum, flags R|O, target, option 2 len 1 MAC
    expect(hex.slice(108, 112)).toBe('8800');
    expect(hex.slice(116)).toBe('a0000000' + 'fd000001000000000000000000000001' + '0201' + '020000000001');
    // The checksum verifies: recomputing over the message with it in place gives 0.
    const icmp = f.subarray(54);
    const sum = icmpv6Checksum(addr, v6('ff020000000000000000000000000001'), icmp);
    expect(sum).toBe(0);
  });

  it('a host that is not a router leaves R clear', () => {
    const f = unsolicitedNeighbourAdvert('02:00:00:00:00:01', new Uint8Array(16));
    expect(f[58]).toBe(0x20);
  });

  it('refuses an address that is not 16 bytes', () => {
    expect(() => unsolicitedNeighbourAdvert('02:00:00:00:00:01', new Uint8Array(4))).toThrow('16 bytes');
  });
});
