/**
 * Ethernet and ARP frames: pure builders and parsers (no I/O).
 */

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_QINQ = 0x88a8;
export const ETHERTYPE_IPV6 = 0x86dd;

export const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';

/** Parse `aa:bb:cc:dd:ee:ff` into 6 bytes; throws on anything else. */
export function macBytes(mac: string): Uint8Array {
  const parts = mac.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) throw new Error(`not a MAC address: ${JSON.stringify(mac)}`);
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

/** Format 6 bytes at `off` as `aa:bb:cc:dd:ee:ff`. */
export function macString(b: Uint8Array, off = 0): string {
  let s = '';
  for (let i = 0; i < 6; i++) s += (i ? ':' : '') + b[off + i]!.toString(16).padStart(2, '0');
  return s;
}

function ipv4Bytes(ip: string): Uint8Array {
  const parts = ip.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) throw new Error(`not an IPv4 address: ${JSON.stringify(ip)}`);
  return Uint8Array.from(parts.map(Number));
}

/**
 * A broadcast ARP request "who has `targetIp`, tell `senderIp`" from
 * `senderMac`, padded to the 60-byte Ethernet minimum.
 */
export function arpRequest(senderMac: string, senderIp: string, targetIp: string): Uint8Array {
  const f = new Uint8Array(60);
  const v = new DataView(f.buffer);
  f.set(macBytes(BROADCAST_MAC), 0);
  f.set(macBytes(senderMac), 6);
  v.setUint16(12, ETHERTYPE_ARP);
  v.setUint16(14, 1); // hardware: Ethernet
  v.setUint16(16, ETHERTYPE_IPV4); // protocol: IPv4
  f[18] = 6;
  f[19] = 4;
  v.setUint16(20, 1); // request
  f.set(macBytes(senderMac), 22);
  f.set(ipv4Bytes(senderIp), 28);
  // target MAC (32..37) stays zero
  f.set(ipv4Bytes(targetIp), 38);
  return f;
}

/**
 * A gratuitous ARP (an ARP announcement, RFC 5227 §2.3): a broadcast request
 * with sender and target IP both `ip` and a zero target MAC, from `mac`.
 * Neighbours that have an entry for `ip` replace its MAC with `mac` (Linux
 * does this whatever `arp_accept` says, unless the entry changed within the
 * last `locktime`, 1 s by default: send it more than once).
 */
export function arpAnnouncement(mac: string, ip: string): Uint8Array {
  return arpRequest(mac, ip, ip);
}

export interface EthernetHeader {
  dst: string;
  src: string;
  /** EtherType after any VLAN tags. */
  ethertype: number;
  /** VLAN ids of the tags, outermost first. */
  vlans: number[];
  /** Offset of the payload after the header and tags. */
  payloadOffset: number;
}

/** Parse the Ethernet header (and 802.1Q / 802.1ad tags); undefined when the frame is too short. */
export function parseEthernet(f: Uint8Array, len = f.length): EthernetHeader | undefined {
  if (len < 14) return undefined;
  const vlans: number[] = [];
  let off = 12;
  let type = (f[off]! << 8) | f[off + 1]!;
  while (type === ETHERTYPE_VLAN || type === ETHERTYPE_QINQ) {
    if (len < off + 6) return undefined;
    vlans.push(((f[off + 2]! << 8) | f[off + 3]!) & 0x0fff);
    off += 4;
    type = (f[off]! << 8) | f[off + 1]!;
  }
  return { dst: macString(f, 0), src: macString(f, 6), ethertype: type, vlans, payloadOffset: off + 2 };
}
