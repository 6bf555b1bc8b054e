/**
 * With kernel 802.1Q devices the kernel forwards a trunk's frames to the VLAN
 * device of their id and drops the rest without a word. The monitor makes
 * those drops visible with the same counters as the user-space trunk: a
 * packet socket on the trunk whose BPF filter ({@link trunkMonitorFilter})
 * passes only frames the trunk guard would drop, each classified and counted
 * by reason. It never forwards anything. A double-tagged frame of one of our
 * VLANs is counted here AND dropped later by the segment guard of the tunnel
 * engine (the kernel hands it to the segment's bridge).
 */
import type { Logger } from '../../shared/log.js';
import type { PacketSocket, TaggedBatch } from '../packet-socket.js';
import { classifyTrunkFrame, vlanTable } from './classify.js';
import { zeroTrunkDrops, type TrunkStatus, type VlanPortStatus } from './trunk.js';

export interface TrunkMonitorOptions {
  trunk: string;
  /** A socket opened with the monitor filter of `ports`' VLANs. */
  socket: PacketSocket;
  /** The VLAN devices (name, VLAN, segment) on this trunk. */
  ports: readonly { vlan: number; segment: number; port: string }[];
  log: Logger;
}

export class TrunkMonitor {
  private readonly ours: Uint8Array;
  private readonly drops = zeroTrunkDrops();
  private rxFrames = 0;

  constructor(private readonly opts: TrunkMonitorOptions) {
    this.ours = vlanTable(opts.ports.map((p) => p.vlan));
  }

  start(): void {
    this.opts.socket.onError((e) => { this.opts.log.error('trunk monitor stopped', { trunk: this.opts.trunk, error: e.message }); });
    this.opts.socket.onBatch((b) => { this.onFrames(b); });
  }

  stop(): void {
    this.opts.socket.close();
  }

  status(): TrunkStatus {
    const ports: VlanPortStatus[] = this.opts.ports.map((p) => ({ ...p, fromTrunk: 0, toTrunk: 0, drops: {} }));
    return {
      trunk: this.opts.trunk, implementation: 'kernel', vlans: this.opts.ports.map((p) => p.vlan),
      rxFrames: this.rxFrames, txFrames: 0, drops: { ...this.drops }, ports, socket: this.opts.socket.counters(),
    };
  }

  private onFrames(b: TaggedBatch): void {
    this.rxFrames += b.count;
    for (let i = 0; i < b.count; i++) {
      const v = classifyTrunkFrame(b.tags[i]!, b.buffer, b.offset(i), b.lengths[i]!, this.ours);
      // The filter passes only frames to drop; an accepted one means the filter was
      // bypassed (more VLANs than it lists): the kernel forwards it, nothing to count.
      if (typeof v !== 'number') this.drops[v]!++;
    }
  }
}
