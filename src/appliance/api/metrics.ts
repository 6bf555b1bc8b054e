/**
 * Prometheus text exposition (format 0.0.4) of an appliance, rendered from
 * one status snapshot per scrape. Pure. Counters are the daemon's own
 * (monotonic since its start); a restart resets them, which Prometheus'
 * rate() handles.
 *
 * nea renders the few families it has itself instead of using prom-client:
 * the values already live in the status snapshot, and a registry of
 * long-lived metric objects would be a second copy of them.
 */
import type { Desired } from '../../protocol/appliance-api.js';
import type { LiveStatus, ReconcileCounters } from '../manager.js';

/** A peer counts as up while its last handshake is younger than this (WireGuard's reject-after-time). */
export const PEER_UP_MS = 180_000;

interface Family { name: string; help: string; type: 'counter' | 'gauge'; samples: [Record<string, string | number>, number][] }

function escape(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

export function renderFamilies(fams: readonly Family[]): string {
  const out: string[] = [];
  for (const f of fams) {
    out.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
    for (const [labels, v] of f.samples) {
      const l = Object.entries(labels).map(([k, x]) => `${k}="${escape(String(x))}"`).join(',');
      out.push(`${f.name}${l ? `{${l}}` : ''} ${Number.isFinite(v) ? v : 0}`);
    }
  }
  return out.join('\n') + '\n';
}

export interface MetricsInput {
  live: LiveStatus;
  desired: Desired;
  version: number;
  reconcile: ReconcileCounters;
}

export function renderMetrics({ live, desired, version, reconcile }: MetricsInput): string {
  const names = new Map(desired.peers.map((p) => [p.publicKey, p.name ?? '']));
  const peer = (k: string): Record<string, string> => ({ peer: k, name: names.get(k) ?? '' });
  const fams: Family[] = [
    { name: 'nea_tunnel_peer_up', help: `1 while the peer's last handshake is younger than ${PEER_UP_MS / 1000} s`, type: 'gauge',
      samples: live.peers.map((p) => [peer(p.publicKey), p.lastHandshakeAgoMs !== null && p.lastHandshakeAgoMs < PEER_UP_MS ? 1 : 0]) },
    { name: 'nea_tunnel_handshakes_total', help: 'completed handshakes with the peer', type: 'counter',
      samples: live.peers.map((p) => [peer(p.publicKey), p.counters.handshakes]) },
    { name: 'nea_tunnel_rx_bytes_total', help: 'bytes received from the peer (transport payload)', type: 'counter',
      samples: live.peers.map((p) => [peer(p.publicKey), p.counters.rxBytes]) },
    { name: 'nea_tunnel_tx_bytes_total', help: 'bytes sent to the peer (transport payload)', type: 'counter',
      samples: live.peers.map((p) => [peer(p.publicKey), p.counters.txBytes]) },
    { name: 'nea_tunnel_rx_packets_total', help: 'packets received from the peer', type: 'counter',
      samples: live.peers.map((p) => [peer(p.publicKey), p.counters.rxPackets]) },
    { name: 'nea_tunnel_tx_packets_total', help: 'packets sent to the peer', type: 'counter',
      samples: live.peers.map((p) => [peer(p.publicKey), p.counters.txPackets]) },
    { name: 'nea_tunnel_drops_total', help: 'packets or frames dropped, by where and reason', type: 'counter',
      samples: [
        ...live.peers.flatMap((p) => Object.entries(p.counters.drops).map(([reason, n]): [Record<string, string>, number] => [{ scope: 'peer', ...peer(p.publicKey), reason }, n])),
        ...Object.entries(live.unauthenticatedDrops).map(([reason, n]): [Record<string, string>, number] => [{ scope: 'unauthenticated', peer: '', name: '', reason }, n]),
      ] },
    { name: 'nea_segment_frames_total', help: 'frames of the segment through the tunnel, by direction', type: 'counter',
      samples: live.segments.flatMap((s): [Record<string, string | number>, number][] => [[{ segment: s.id, direction: 'to_tunnel' }, s.toTunnel], [{ segment: s.id, direction: 'from_tunnel' }, s.fromTunnel]]) },
    { name: 'nea_segment_drops_total', help: 'frames of the segment dropped, by reason', type: 'counter',
      samples: live.segments.flatMap((s) => Object.entries(s.drops).map(([reason, n]): [Record<string, string | number>, number] => [{ segment: s.id, reason }, n])) },
    { name: 'nea_nat_rule_hits_packets_total', help: 'packets matched by a public IP rule', type: 'counter',
      samples: Object.entries(live.natHits ?? {}).map(([rule, h]) => [{ rule }, h.packets]) },
    { name: 'nea_nat_rule_hits_bytes_total', help: 'bytes matched by a public IP rule', type: 'counter',
      samples: Object.entries(live.natHits ?? {}).map(([rule, h]) => [{ rule }, h.bytes]) },
    { name: 'nea_reconcile_total', help: 'attempts to apply a desired state to the running appliance', type: 'counter', samples: [[{}, reconcile.applies]] },
    { name: 'nea_reconcile_errors_total', help: 'attempts that failed (the previous desired state stayed in force)', type: 'counter', samples: [[{}, reconcile.errors]] },
    { name: 'nea_desired_state_version', help: 'version of the persisted state', type: 'gauge', samples: [[{}, version]] },
  ];
  return renderFamilies(fams);
}
