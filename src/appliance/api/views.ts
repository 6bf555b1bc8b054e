/** What the API shows of the state: secrets left out, live counters joined to the desired items. */
import type { DesiredView, Peer, PeerView, StatusView } from '../../protocol/appliance-api.js';
import type { StateManager } from '../manager.js';
import type { StateFile } from '../state.js';
import { PEER_UP_MS } from './metrics.js';

export function peerView(p: Peer): PeerView {
  const { presharedKey, ...rest } = p;
  return { ...rest, hasPresharedKey: presharedKey !== undefined };
}

export function desiredView(s: StateFile): DesiredView {
  return { version: s.revisions.desired ?? 0, ...s.desired, peers: s.desired.peers.map(peerView) };
}

export async function statusView(manager: StateManager): Promise<StatusView> {
  const s = manager.snapshot();
  const live = await manager.control.status();
  const names = new Map(s.desired.peers.map((p) => [p.publicKey, p.name]));
  const seg = new Map(live.segments.map((x) => [x.id, x]));
  return {
    name: manager.control.name, role: manager.control.role, publicKey: live.publicKey, version: s.version, listenPort: live.listenPort,
    peers: live.peers.map((p) => {
      const name = names.get(p.publicKey);
      return {
        publicKey: p.publicKey, ...(name !== undefined && { name }), endpoint: p.endpoint,
        up: p.lastHandshakeAgoMs !== null && p.lastHandshakeAgoMs < PEER_UP_MS, lastHandshakeAgoMs: p.lastHandshakeAgoMs,
        handshakes: p.counters.handshakes, segments: p.segments,
        counters: { rxPackets: p.counters.rxPackets, rxBytes: p.counters.rxBytes, txPackets: p.counters.txPackets, txBytes: p.counters.txBytes },
        drops: p.counters.drops,
      };
    }),
    segments: s.desired.segments.map((d) => {
      const l = seg.get(d.id);
      return { id: d.id, name: d.name, mode: d.mode, internet: d.internet, toTunnel: l?.toTunnel ?? 0, fromTunnel: l?.fromTunnel ?? 0, drops: l?.drops ?? {} };
    }),
    publicRules: s.desired.publicRules.map((r) => ({
      name: r.name, kind: r.kind, segment: r.segment, publicAddress: r.publicAddress, target: r.target,
      ...(r.kind === 'port' && { protocol: r.protocol, publicPort: r.publicPort, ...(r.targetPort !== undefined && { targetPort: r.targetPort }) }),
      hits: live.natHits?.[r.name] ?? null,
    })),
    routing: s.desired.routing,
    unauthenticatedDrops: live.unauthenticatedDrops,
    reconcileErrors: manager.counters.errors,
    lastReconcileError: manager.counters.lastError,
  };
}
