import { describe, expect, it } from 'vitest';
import { SystemError, ValidationError } from '../shared/errors.js';
import { formatIp } from './ip.js';
import { checkLinkName, checkMtu, errnoOf, isVlanUnsupported, netlinkError, parseVlanInfoData, routeParts, vlanLinkInfo } from './netlink.js';

describe('errnoOf: what the netlink package throws', () => {
  it.each([
    [new Error('Request rejected: EEXIST'), 'EEXIST'],
    [new Error('Request rejected: 17'), 'EEXIST'],
    [new Error('Timeout has been reached'), 'ETIMEDOUT'],
    [Object.assign(new Error('send failed'), { code: 'ENOBUFS', errno: -105, syscall: 'send' }), 'ENOBUFS'],
    [new Error('something else'), 'EIO'],
    ['not even an error', 'EIO'],
  ])('%s -> %s', (e, want) => {
    expect(errnoOf(e)).toBe(want);
  });
});

describe('netlinkError', () => {
  it('is a one-line SystemError naming the operation, errno and what it means', () => {
    const e = netlinkError(new Error('Request rejected: EPERM'), 'RTM_NEWLINK', 'add bridge br0');
    expect(e).toBeInstanceOf(SystemError);
    expect(e.code).toBe('NETLINK_FAILED');
    expect(e.errno).toBe('EPERM');
    expect(e.syscall).toBe('RTM_NEWLINK');
    expect(e.message).toBe('add bridge br0: EPERM (needs CAP_NET_ADMIN in this network namespace (run as root))');
    expect(e.message).not.toContain('\n');
  });
  it('prefers a per-call hint, then a general one, then the errno description', () => {
    expect(netlinkError(new Error('Request rejected: EEXIST'), 'RTM_NEWADDR', 'x', { EEXIST: 'already there' }).message).toBe('x: EEXIST (already there)');
    expect(netlinkError(new Error('Request rejected: ENODEV'), 'RTM_SETLINK', 'x').message).toBe('x: ENODEV (no such link)');
    expect(netlinkError(new Error('Request rejected: ERANGE'), 'RTM_SETLINK', 'x').message).toMatch(/^x: ERANGE \(.+\)$/);
  });
  it('has its own code for timeouts', () => {
    expect(netlinkError(new Error('Timeout has been reached'), 'RTM_GETLINK', 'x').code).toBe('NETLINK_TIMEOUT');
  });
});

describe('routeParts', () => {
  it.each([
    [{ dst: '10.1.0.0/16' }, 4, '10.1.0.0', 16, undefined, 254, 0],
    [{ dst: 'default', gateway: '10.0.0.1' }, 4, '0.0.0.0', 0, '10.0.0.1', 254, 0],
    [{ dst: 'default', gateway: 'fd00::1' }, 6, '::', 0, 'fd00::1', 254, 1024],
    [{ dst: '::/0', gateway: 'fe80::1' }, 6, '::', 0, 'fe80::1', 254, 1024],
    [{ dst: 'fd01::/64', metric: 0 }, 6, 'fd01::', 64, undefined, 254, 1024],
    [{ dst: 'fd01::/64', metric: 10, table: 100 }, 6, 'fd01::', 64, undefined, 100, 10],
    [{ dst: '10.1.0.0/16', metric: 7, table: 1000 }, 4, '10.1.0.0', 16, undefined, 1000, 7],
  ])('%j', (spec, family, dst, dstLen, gw, table, metric) => {
    const p = routeParts(spec);
    expect([p.family, formatIp(p.dst), p.dstLen, p.gateway && formatIp(p.gateway), p.table, p.metric]).toEqual([family, dst, dstLen, gw, table, metric]);
  });
  it.each([
    [{ dst: 'default' }, /without a gateway/],
    [{ dst: '10.1.0.1/16' }, /host bits/],
    [{ dst: '10.1.0.0/16', gateway: 'fd00::1' }, /not IPv4/],
    [{ dst: '10.1.0.0/16', src: 'fd00::1' }, /not IPv4/],
    [{ dst: '10.1.0.0/16', table: 255 }, /table/],
    [{ dst: '10.1.0.0/16', table: 0 }, /table/],
    [{ dst: '10.1.0.0/16', metric: -1 }, /metric/],
    [{ dst: '10.1.0.0' }, /prefix length/],
  ])('refuses %j', (spec, msg) => {
    expect(() => routeParts(spec)).toThrow(ValidationError);
    expect(() => routeParts(spec)).toThrow(msg);
  });
});

describe('link name and MTU checks', () => {
  it.each(['br0', 'a', 'x'.repeat(15), 'tap-1.2'])('accepts name %j', (n) => {
    expect(checkLinkName(n)).toBe(n);
  });
  it.each(['', 'x'.repeat(16), 'a/b', 'a b', 'a:b', '.', '..'])('refuses name %j', (n) => {
    expect(() => checkLinkName(n)).toThrow(ValidationError);
  });
  it.each([68, 1500, 9000, 65535])('accepts mtu %d', (m) => {
    expect(checkMtu(m)).toBe(m);
  });
  it.each([67, 65536, 1500.5, Number.NaN])('refuses mtu %d', (m) => {
    expect(() => checkMtu(m)).toThrow(ValidationError);
  });
});

describe('802.1Q VLAN devices: IFLA_LINKINFO', () => {
  // Oracle: what iproute2 sends for `ip link add link tr0 name nea-v110 type vlan id 110 protocol 802.1Q`,
  // captured with `strace -e sendmsg -X raw -xx` (the IFLA_LINKINFO attribute's payload): IFLA_INFO_KIND
  // "vlan", IFLA_INFO_DATA { IFLA_VLAN_ID u16 110, IFLA_VLAN_PROTOCOL be16 0x8100 }.
  const iproute2 = '08000100766c616e' + '14000200' + '060001006e000000' + '0600050081000000';

  it('encodes VLAN 110 byte for byte as iproute2 does', () => {
    expect(vlanLinkInfo(110).toString('hex')).toBe(iproute2);
  });

  it('writes the protocol in network order and the id in host order', () => {
    const b = vlanLinkInfo(4094, 0x88a8);
    expect(b.toString('hex')).toBe('08000100766c616e' + '14000200' + '06000100fe0f0000' + '0600050088a80000');
  });

  it('reads back what it writes (IFLA_INFO_DATA alone)', () => {
    expect(parseVlanInfoData(vlanLinkInfo(110).subarray(12))).toEqual({ id: 110, protocol: 0x8100 });
    expect(parseVlanInfoData(vlanLinkInfo(7, 0x88a8).subarray(12))).toEqual({ id: 7, protocol: 0x88a8 });
    expect(parseVlanInfoData(Buffer.alloc(0))).toBeUndefined();
  });

  it.each([0, 4095, 1.5])('refuses VLAN id %d', (id) => {
    expect(() => vlanLinkInfo(id)).toThrow(ValidationError);
  });

  it('refuses a protocol other than 802.1Q and 802.1ad', () => {
    expect(() => vlanLinkInfo(5, 0x9100)).toThrow(/0x9100/);
  });

  it('recognizes a kernel without 802.1Q devices by EOPNOTSUPP from RTM_NEWLINK', () => {
    expect(isVlanUnsupported(netlinkError(new Error('Request rejected: EOPNOTSUPP'), 'RTM_NEWLINK', 'add vlan'))).toBe(true);
    expect(isVlanUnsupported(netlinkError(new Error('Request rejected: -95'), 'RTM_NEWLINK', 'add vlan'))).toBe(true);
    expect(isVlanUnsupported(netlinkError(new Error('Request rejected: EEXIST'), 'RTM_NEWLINK', 'add vlan'))).toBe(false);
  });
});
