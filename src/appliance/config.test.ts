import { describe, expect, it } from 'vitest';
import { parseApplianceConfig, parseEndpoint, segmentLinkNames } from './config.js';

const good = { role: 'tenant', name: 'acme-prod', segments: [{ id: 10, name: 'servers', uplink: 'eth1' }, { id: 20, name: 'dmz' }] };

describe('appliance config', () => {
  it('accepts a valid config', () => {
    expect(parseApplianceConfig(good)).toEqual(good);
  });

  it.each([
    [{ ...good, role: 'router' }, 'f: role: must be "sp" or "tenant", got "router"'],
    [{ ...good, extra: 1 }, 'f: extra: unknown field (allowed: role, name, privateKey, tunnel, segments)'],
    [{ ...good, name: '' }, 'f: name: must be 1-63'],
    [{ ...good, segments: {} }, 'f: segments: must be an array'],
    [{ ...good, segments: [{ id: 0, name: 'x' }] }, 'f: segments[0].id: must be an integer from 1 to 4094'],
    [{ ...good, segments: [{ id: 5, name: 'x' }, { id: 5, name: 'y' }] }, 'f: segments[1].id: duplicate segment id 5'],
    [{ ...good, segments: [{ id: 5, name: 'x', uplink: 'a/b' }] }, 'f: segments[0].uplink: must be an interface name'],
    [{ ...good, segments: [{ id: 5, name: 'x', uplink: 'e' }, { id: 6, name: 'y', uplink: 'e' }] }, 'f: segments[1].uplink: interface e is already the uplink'],
    [{ ...good, segments: [{ id: 5, name: 'x', vlan: 3 }] }, 'f: segments[0].vlan: unknown field'],
    [[], 'f: (top level): must be a JSON object'],
  ])('refuses %j naming the field', (raw, msg) => {
    expect(() => parseApplianceConfig(raw, 'f')).toThrow(msg);
  });

  const key = Buffer.alloc(32, 7).toString('base64');
  const key2 = Buffer.alloc(32, 9).toString('base64');
  const tunnel = { peers: [{ publicKey: key, endpoint: '192.0.2.2:51820', segments: [10] }] };

  it('accepts a tunnel section and fills its defaults', () => {
    const c = parseApplianceConfig({ ...good, privateKey: key2, tunnel });
    expect(c.tunnel).toEqual({ listenPort: 51820, listenAddress: '0.0.0.0', wanMtu: 1500, peers: tunnel.peers });
    expect(c.privateKey).toBe(key2);
  });

  it.each([
    [{ ...tunnel, listenPort: 0 }, 'f: tunnel.listenPort: must be an integer from 1 to 65535'],
    [{ ...tunnel, wanMtu: 100 }, 'f: tunnel.wanMtu: must be an integer from 576 to 9000'],
    [{ peers: [{ publicKey: 'abc', segments: [10] }] }, 'f: tunnel.peers[0].publicKey: key must be 44 characters'],
    [{ peers: [{ publicKey: key, segments: [30] }] }, 'f: tunnel.peers[0].segments[0]: 30 is not a configured segment id'],
    [{ peers: [{ publicKey: key, segments: [10], endpoint: 'example.org:51820' }] }, 'f: tunnel.peers[0].endpoint: must be IPv4:PORT or [IPv6]:PORT'],
    [{ peers: [{ publicKey: key, segments: [10] }, { publicKey: key, segments: [] }] }, 'f: tunnel.peers[1].publicKey: duplicate peer'],
    [{ peers: [{ publicKey: key, segments: [10], allowedIps: ['10.0.0.0/40'] }] }, 'f: tunnel.peers[0].allowedIps[0]: prefix length'],
    [{ peers: [{ publicKey: key, segments: [10], persistentKeepalive: 0 }] }, 'f: tunnel.peers[0].persistentKeepalive: must be an integer'],
    [{ peers: [], l3: { device: 'wg/0' } }, 'f: tunnel.l3.device: must be an interface name'],
    [{ peers: [], mtu: 1400 }, 'f: tunnel.mtu: unknown field'],
  ])('refuses tunnel %j naming the field', (t, msg) => {
    expect(() => parseApplianceConfig({ ...good, tunnel: t }, 'f')).toThrow(msg);
  });

  it('parses endpoints with literal addresses only', () => {
    expect(parseEndpoint('192.0.2.1:51820')).toEqual({ address: '192.0.2.1', port: 51820 });
    expect(parseEndpoint('[2001:db8::1]:443')).toEqual({ address: '2001:db8::1', port: 443 });
    expect(parseEndpoint('192.0.2.1:0')).toBeUndefined();
    expect(parseEndpoint('192.0.2.300:1')).toBeUndefined();
    expect(parseEndpoint('2001:db8::1:443')).toBeUndefined();
  });

  it('derives link names within the 15-byte limit', () => {
    expect(segmentLinkNames(4094)).toEqual({ bridge: 'nea-br4094', tap: 'nea-tap4094' });
  });
});
