/**
 * The desired state (state.json, the API) and the config file describe the
 * same things two ways. This file maps between them. Pure.
 *
 * - {@link desiredFromConfig}: the config's desired part (segments with
 *   their backings and modes, public IP rules, routing between segments,
 *   tunnel peers): what seeds and re-seeds the state file.
 * - {@link configWithDesired}: a config whose desired part is the given
 *   state, everything else (role, name, keys, tunnel port and MTU, VLAN
 *   devices, the external interface) as in the config file. The result is
 *   validated by the config parser itself, so every rule of the config
 *   (ports that cannot be mapped, the public pool, ...) holds for API
 *   changes too, with the field named (`desired state: publicRules[1]...`).
 *   Fields the config file spells its own way (an `uplink`, a mode left at
 *   its default) keep the file's spelling, so an unchanged item compares
 *   equal to the running one.
 */
import type { Desired, Peer, PublicRule, Segment } from '../protocol/appliance-api.js';
import { ValidationError } from '../shared/errors.js';
import { parseApplianceConfig, segmentBacking, type ApplianceConfig, type PeerConfig, type SegmentConfig } from './config.js';
import { sameItem } from './state.js';

export function desiredFromConfig(c: ApplianceConfig): Desired {
  return {
    segments: c.segments.map((s): Segment => {
      const b = segmentBacking(s);
      return {
        id: s.id, name: s.name, ...(b && { backing: b }), mode: s.mode ?? 'extend', internet: s.internet ?? false,
        ...(s.gateway && { gateway: { ...s.gateway } }),
      };
    }).sort((a, b) => a.id - b.id),
    publicRules: (c.publicRules ?? []).map((r): PublicRule => ({ ...r })),
    peers: (c.tunnel?.peers ?? []).map((p): Peer => ({ ...p, segments: [...p.segments] })),
    routing: { betweenSegments: c.routeBetweenSegments ?? false },
  };
}

function segmentConfig(s: Segment, base: SegmentConfig | undefined): SegmentConfig {
  const out: SegmentConfig = { id: s.id, name: s.name };
  if (base && sameItem(segmentBacking(base) ?? null, s.backing ?? null)) {
    if (base.uplink !== undefined) out.uplink = base.uplink;
    if (base.backing !== undefined) out.backing = base.backing;
  } else if (s.backing) {
    out.backing = s.backing;
  }
  if (s.mode !== 'extend' || base?.mode !== undefined) out.mode = s.mode;
  if (s.internet || base?.internet !== undefined) out.internet = s.internet;
  if (s.gateway) out.gateway = s.gateway;
  return out;
}

function peerConfig(p: Peer): PeerConfig {
  const { name: _name, ...rest } = p;
  return rest;
}

/**
 * `base` with its desired part replaced by `d`; validated as a config
 * (ValidationError naming `desired state: <field>`).
 */
export function configWithDesired(base: ApplianceConfig, d: Desired): ApplianceConfig {
  const bySeg = new Map(base.segments.map((s) => [s.id, s]));
  const raw: Record<string, unknown> = { ...base, segments: d.segments.map((s) => segmentConfig(s, bySeg.get(s.id))) };
  if (d.publicRules.length > 0 || base.publicRules !== undefined) raw.publicRules = d.publicRules;
  if (d.routing.betweenSegments || base.routeBetweenSegments !== undefined) raw.routeBetweenSegments = d.routing.betweenSegments;
  if (base.tunnel) raw.tunnel = { ...base.tunnel, peers: d.peers.map(peerConfig) };
  else if (d.peers.length > 0) throw new ValidationError('desired state: peers: this appliance\'s config has no tunnel section; add one (listenPort) before adding peers');
  return parseApplianceConfig(JSON.parse(JSON.stringify(raw)) as unknown, 'desired state');
}
