import { describe, expect, it } from 'vitest';
import { parseApplianceConfig, segmentLinkNames } from './config.js';

const good = { role: 'tenant', name: 'acme-prod', segments: [{ id: 10, name: 'servers', uplink: 'eth1' }, { id: 20, name: 'dmz' }] };

describe('appliance config', () => {
  it('accepts a valid config', () => {
    expect(parseApplianceConfig(good)).toEqual(good);
  });

  it.each([
    [{ ...good, role: 'router' }, 'f: role: must be "sp" or "tenant", got "router"'],
    [{ ...good, extra: 1 }, 'f: extra: unknown field (allowed: role, name, segments)'],
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

  it('derives link names within the 15-byte limit', () => {
    expect(segmentLinkNames(4094)).toEqual({ bridge: 'nea-br4094', tap: 'nea-tap4094' });
  });
});
