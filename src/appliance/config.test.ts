import { describe, expect, it } from 'vitest';
import { parseApplianceConfig, parseEndpoint, segmentBacking, segmentLinkNames } from './config.js';

const good = { role: 'tenant', name: 'acme-prod', segments: [{ id: 10, name: 'servers', uplink: 'eth1' }, { id: 20, name: 'dmz' }] };

describe('appliance config', () => {
  it('accepts a valid config', () => {
    expect(parseApplianceConfig(good)).toEqual(good);
  });

  it.each([
    [{ ...good, role: 'router' }, 'f: role: must be "sp" or "tenant", got "router"'],
    [{ ...good, extra: 1 }, 'f: extra: unknown field (allowed: role, name, privateKey, vlanDevices, tunnel, segments, external, publicRules, routeBetweenSegments)'],
    [{ ...good, name: '' }, 'f: name: must be 1-63'],
    [{ ...good, segments: {} }, 'f: segments: must be an array'],
    [{ ...good, segments: [{ id: 0, name: 'x' }] }, 'f: segments[0].id: must be an integer from 1 to 4094'],
    [{ ...good, segments: [{ id: 5, name: 'x' }, { id: 5, name: 'y' }] }, 'f: segments[1].id: duplicate segment id 5'],
    [{ ...good, segments: [{ id: 5, name: 'x', uplink: 'a/b' }] }, 'f: segments[0].uplink: must be an interface name'],
    [{ ...good, segments: [{ id: 5, name: 'x', uplink: 'e' }, { id: 6, name: 'y', uplink: 'e' }] }, 'f: segments[1].uplink: interface e is already the uplink'],
    [{ ...good, segments: [{ id: 5, name: 'x', vlan: 3 }] }, 'f: segments[0].vlan: unknown field'],
    [{ ...good, segments: [{ id: 5, name: 'x', backing: 'eth1' }] }, 'f: segments[0].backing: must be an object with kind "access" or "vlan"'],
    [{ ...good, segments: [{ id: 5, name: 'x', backing: { kind: 'vxlan' } }] }, 'f: segments[0].backing.kind: must be "access" or "vlan", got "vxlan"'],
    [{ ...good, segments: [{ id: 5, name: 'x', backing: { kind: 'vlan', trunk: 'eth1', vlan: 0 } }] }, 'f: segments[0].backing.vlan: must be an integer from 1 to 4094'],
    [{ ...good, segments: [{ id: 5, name: 'x', backing: { kind: 'vlan', trunk: 'eth1', vlan: 4095 } }] }, 'f: segments[0].backing.vlan: must be an integer from 1 to 4094'],
    [{ ...good, segments: [{ id: 5, name: 'x', backing: { kind: 'vlan', trunk: 'a b', vlan: 5 } }] }, 'f: segments[0].backing.trunk: must be an interface name'],
    [{ ...good, segments: [{ id: 5, name: 'x', backing: { kind: 'vlan', trunk: 'eth1', vlan: 5, pcp: 3 } }] }, 'f: segments[0].backing.pcp: unknown field (allowed: kind, trunk, vlan)'],
    [{ ...good, segments: [{ id: 5, name: 'x', backing: { kind: 'access' } }] }, 'f: segments[0].backing.interface: must be an interface name'],
    [{ ...good, segments: [{ id: 5, name: 'x', uplink: 'e', backing: { kind: 'access', interface: 'e' } }] }, 'f: segments[0].uplink: give either uplink or backing'],
    [{ ...good, segments: [{ id: 5, name: 'x', backing: { kind: 'vlan', trunk: 't', vlan: 7 } }, { id: 6, name: 'y', backing: { kind: 'vlan', trunk: 't', vlan: 7 } }] },
      'f: segments[1].backing.vlan: VLAN 7 on t already backs another segment'],
    [{ ...good, segments: [{ id: 5, name: 'x', backing: { kind: 'access', interface: 'e' } }, { id: 6, name: 'y', uplink: 'e' }] }, 'f: segments[1].uplink: interface e is already the uplink'],
    [{ ...good, segments: [{ id: 5, name: 'x', backing: { kind: 'vlan', trunk: 't', vlan: 7 } }, { id: 6, name: 'y', uplink: 't' }] },
      'f: segments[1].uplink: interface t is a VLAN trunk of another segment'],
    [{ ...good, vlanDevices: 'maybe' }, 'f: vlanDevices: must be "auto", "kernel" or "userspace", got "maybe"'],
    [[], 'f: (top level): must be a JSON object'],
  ])('refuses %j naming the field', (raw, msg) => {
    expect(() => parseApplianceConfig(raw, 'f')).toThrow(msg);
  });

  const key = Buffer.alloc(32, 7).toString('base64');
  const key2 = Buffer.alloc(32, 9).toString('base64');
  const tunnel = { peers: [{ publicKey: key, endpoint: '192.0.2.2:51820', segments: [10] }] };

  it('accepts both backings on one trunk and several, and reads uplink as an access backing', () => {
    const c = parseApplianceConfig({
      role: 'sp', name: 'sp-acme', vlanDevices: 'userspace', segments: [
        { id: 10, name: 'web', backing: { kind: 'vlan', trunk: 'trunk0', vlan: 110 } },
        { id: 20, name: 'db', backing: { kind: 'vlan', trunk: 'trunk0', vlan: 120 } },
        { id: 30, name: 'dmz', backing: { kind: 'vlan', trunk: 'trunk1', vlan: 110 } },
        { id: 40, name: 'legacy', backing: { kind: 'access', interface: 'eth2' } },
        { id: 50, name: 'old', uplink: 'eth3' },
        { id: 60, name: 'inside' },
      ],
    });
    expect(c.vlanDevices).toBe('userspace');
    expect(c.segments.map(segmentBacking)).toEqual([
      { kind: 'vlan', trunk: 'trunk0', vlan: 110 },
      { kind: 'vlan', trunk: 'trunk0', vlan: 120 },
      { kind: 'vlan', trunk: 'trunk1', vlan: 110 },
      { kind: 'access', interface: 'eth2' },
      { kind: 'access', interface: 'eth3' },
      undefined,
    ]);
    expect(c.segments[4]).toEqual({ id: 50, name: 'old', uplink: 'eth3' });
  });

  it('accepts a tunnel section and fills its defaults', () => {
    const c = parseApplianceConfig({ ...good, privateKey: key2, tunnel });
    expect(c.tunnel).toEqual({ listenPort: 51820, listenAddress: '0.0.0.0', wanMtu: 1500, peers: tunnel.peers });
    expect(c.privateKey).toBe(key2);
  });

  it.each([
    [{ ...tunnel, listenPort: 0 }, 'f: tunnel.listenPort: must be an integer from 1 to 65535'],
    [{ ...tunnel, wanMtu: 100 }, 'f: tunnel.wanMtu: must be an integer from 576 to 9000'],
    [{ ...tunnel, macLimit: 4 }, 'f: tunnel.macLimit: must be an integer from 16 to 1000000 MACs'],
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
    expect(segmentLinkNames(4094)).toEqual({ bridge: 'nea-br4094', tap: 'nea-tap4094', vlanPort: 'nea-v4094' });
  });
});
