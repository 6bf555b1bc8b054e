import { describe, expect, it } from 'vitest';
import { arpRequest, ETHERTYPE_ARP, ETHERTYPE_IPV4, macBytes, macString, parseEthernet } from './ethernet.js';

const hex = (s: string): Uint8Array => Uint8Array.from(s.replace(/\s+/g, '').match(/../g)!.map((b) => parseInt(b, 16)));

describe('ethernet', () => {
  it('builds an ARP request byte for byte', () => {
    const f = arpRequest('02:00:00:00:00:01', '192.0.2.10', '192.0.2.1');
    expect(Buffer.from(f).toString('hex')).toBe(
      'ffffffffffff' + '020000000001' + '0806' + '0001' + '0800' + '06' + '04' + '0001' +
      '020000000001' + 'c000020a' + '000000000000' + 'c0000201' + '00'.repeat(18));
  });

  it('parses untagged, tagged and double-tagged headers', () => {
    expect(parseEthernet(arpRequest('02:00:00:00:00:01', '10.0.0.1', '10.0.0.2'))).toEqual(
      { dst: 'ff:ff:ff:ff:ff:ff', src: '02:00:00:00:00:01', ethertype: ETHERTYPE_ARP, vlans: [], payloadOffset: 14 });
    const tagged = hex('ffffffffffff 020000000002 8100 0064 0800 45');
    expect(parseEthernet(tagged)).toMatchObject({ ethertype: ETHERTYPE_IPV4, vlans: [100], payloadOffset: 18 });
    const qinq = hex('ffffffffffff 020000000002 88a8 200a 8100 0014 0800 45');
    expect(parseEthernet(qinq)).toMatchObject({ ethertype: ETHERTYPE_IPV4, vlans: [10, 20], payloadOffset: 22 });
  });

  it('refuses truncated frames and bad MACs', () => {
    expect(parseEthernet(new Uint8Array(13))).toBeUndefined();
    expect(parseEthernet(hex('ffffffffffff 020000000002 8100 00'))).toBeUndefined();
    expect(() => macBytes('02:00:00:00:00')).toThrow('not a MAC address');
    expect(macString(macBytes('0A:0b:00:FF:10:01'))).toBe('0a:0b:00:ff:10:01');
  });
});
