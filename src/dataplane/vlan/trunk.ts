/**
 * VLAN segments on a trunk, in user space: for kernels without 802.1Q
 * devices (8021q), one packet socket on the trunk and, per VLAN segment, a
 * port (a TAP `nea-v<segment>` in the segment's bridge) stand in for the
 * kernel's VLAN devices.
 *
 * Trunk → segment (one batch read from the trunk's packet socket):
 *   1. for each frame: the trunk guard ({@link classifyTrunkFrame}) gives its
 *      VLAN or a drop reason (untagged, foreign TPID, foreign VLAN,
 *      double-tagged, runt), counted per trunk;
 *   2. accepted frames (already untagged: the kernel took the tag off on
 *      receive) are queued per port as views of the socket's slab;
 *   3. after the batch, one batched write per port, in order.
 * Segment → trunk (one batch read from a port):
 *   1. for each frame: a frame carrying a tag of its own is dropped
 *      (`double-tagged`: it would leave the trunk with two tags), as is a runt;
 *   2. the rest go out with one batched send, the port's tag inserted by the
 *      socket (no copy).
 * Ordering: frames keep their order per port and per direction. Buffers: the
 * slabs belong to their devices and are valid only during the batch; nothing
 * is copied in JavaScript. Drop policy: what the kernel refuses (a port's
 * queue or the trunk's queue full) is dropped and counted
 * (`port-write-refused`, `trunk-send-refused`); nothing is retried.
 *
 * The trunk owns its packet socket (closed by `stop`); the ports belong to
 * the caller, like the tunnel engine's local ports.
 */
import type { Logger } from '../../shared/log.js';
import { carriesTag, tagWord } from '../../protocol/vlan.js';
import type { PacketBatch, PacketDevice, PacketDeviceCounters } from '../packet-device.js';
import type { PacketSocket, TaggedBatch } from '../packet-socket.js';
import { TRUNK_DROP_REASONS, classifyTrunkFrame, vlanTable } from './classify.js';

/** One VLAN segment on a trunk. */
export interface VlanPortConfig {
  /** VLAN id on the trunk, 1..4094. */
  vlan: number;
  /** The segment it backs. */
  segment: number;
  /** The segment's port for it (a TAP in the segment's bridge). */
  device: PacketDevice;
}

export interface VlanTrunkOptions {
  /** Trunk interface name (for status and logs). */
  trunk: string;
  socket: PacketSocket;
  ports: readonly VlanPortConfig[];
  log: Logger;
}

export interface VlanPortStatus {
  vlan: number;
  segment: number;
  /** The segment-side port (`nea-v<segment>` in user space, the VLAN device with kernel devices). */
  port: string;
  /** Frames from the trunk written to the segment (with kernel devices: the VLAN device's received packets). */
  fromTrunk: number;
  /** Frames from the segment sent on the trunk (with kernel devices: the VLAN device's sent packets). */
  toTrunk: number;
  /** Drops by reason: `double-tagged`, `runt` (from the segment), `port-write-refused`, `trunk-send-refused`. */
  drops: Record<string, number>;
}

/** What the appliance status shows of a trunk (both implementations). */
export interface TrunkStatus {
  trunk: string;
  /** `userspace`: packet socket + TAPs (this module); `kernel`: 802.1Q devices, with a monitor counting drops. */
  implementation: 'userspace' | 'kernel';
  vlans: number[];
  /** Frames received on the trunk (userspace: all of them; kernel: those the monitor saw, i.e. dropped ones). */
  rxFrames: number;
  /** Frames sent on the trunk (userspace only; 0 with kernel devices). */
  txFrames: number;
  /** Trunk frames dropped, by reason (see TrunkDropReason). */
  drops: Record<string, number>;
  ports: VlanPortStatus[];
  /** Counters of the trunk's packet socket. */
  socket: PacketDeviceCounters;
}

interface PortState {
  readonly cfg: VlanPortConfig;
  readonly tag: number;
  readonly status: VlanPortStatus;
  // Trunk frames queued for this port during one trunk batch.
  readonly wOffsets: Uint32Array;
  readonly wLengths: Uint32Array;
  wCount: number;
  // Frames of one port batch queued for the trunk.
  readonly tOffsets: Uint32Array;
  readonly tLengths: Uint32Array;
}

function count(r: Record<string, number>, reason: string, n = 1): void {
  r[reason] = (r[reason] ?? 0) + n;
}

/** Zeroed counters for every trunk drop reason, so the status always lists them. */
export function zeroTrunkDrops(): Record<string, number> {
  return Object.fromEntries(TRUNK_DROP_REASONS.map((r) => [r, 0]));
}

export class VlanTrunk {
  private readonly socket: PacketSocket;
  private readonly ports: PortState[] = [];
  private readonly byVlan: (PortState | undefined)[] = new Array<PortState | undefined>(4096);
  private readonly ours: Uint8Array;
  private readonly drops = zeroTrunkDrops();
  private rxFrames = 0;
  private txFrames = 0;
  private readonly log: Logger;

  constructor(private readonly opts: VlanTrunkOptions) {
    this.socket = opts.socket;
    this.log = opts.log;
    for (const p of opts.ports) {
      if (this.byVlan[p.vlan] !== undefined) throw new RangeError(`VLAN ${p.vlan} is on trunk ${opts.trunk} twice`);
      const rx = opts.socket.batchSize;
      const tx = p.device.batchSize;
      const st: PortState = {
        cfg: p, tag: tagWord(p.vlan),
        status: { vlan: p.vlan, segment: p.segment, port: p.device.name, fromTrunk: 0, toTrunk: 0, drops: {} },
        wOffsets: new Uint32Array(rx), wLengths: new Uint32Array(rx), wCount: 0,
        tOffsets: new Uint32Array(tx), tLengths: new Uint32Array(tx),
      };
      this.ports.push(st);
      this.byVlan[p.vlan] = st;
    }
    this.ours = vlanTable(opts.ports.map((p) => p.vlan));
  }

  /** Starts reading the trunk and the ports. */
  start(): void {
    this.socket.onError((e) => { this.log.error('trunk receive stopped', { trunk: this.opts.trunk, error: e.message }); });
    this.socket.onBatch((b) => { this.onTrunkFrames(b); });
    for (const p of this.ports) p.cfg.device.onBatch((b) => { this.onPortFrames(p, b); });
  }

  /** Stops reading and closes the trunk's socket (the ports stay open: they are the caller's). */
  stop(): void {
    this.socket.close();
    for (const p of this.ports) if (p.cfg.device.state !== 'closed') p.cfg.device.pause();
  }

  status(): TrunkStatus {
    return {
      trunk: this.opts.trunk, implementation: 'userspace', vlans: this.ports.map((p) => p.cfg.vlan),
      rxFrames: this.rxFrames, txFrames: this.txFrames, drops: { ...this.drops },
      ports: this.ports.map((p) => ({ ...p.status, drops: { ...p.status.drops } })),
      socket: this.socket.counters(),
    };
  }

  // --- trunk → segments -------------------------------------------------------

  private onTrunkFrames(b: TaggedBatch): void {
    const buf = b.buffer;
    this.rxFrames += b.count;
    for (let i = 0; i < b.count; i++) {
      const off = b.offset(i);
      const len = b.lengths[i]!;
      const v = classifyTrunkFrame(b.tags[i]!, buf, off, len, this.ours);
      if (typeof v !== 'number') { this.drops[v]!++; continue; }
      const p = this.byVlan[v]!;
      p.wOffsets[p.wCount] = off;
      p.wLengths[p.wCount] = len;
      p.wCount++;
    }
    for (const p of this.ports) {
      if (p.wCount === 0) continue;
      const n = p.cfg.device.writeBatch(buf, p.wOffsets, p.wLengths, p.wCount);
      p.status.fromTrunk += n;
      if (n < p.wCount) count(p.status.drops, 'port-write-refused', p.wCount - n);
      p.wCount = 0;
    }
  }

  // --- segment → trunk --------------------------------------------------------

  private onPortFrames(p: PortState, b: PacketBatch): void {
    const buf = b.buffer;
    let n = 0;
    for (let i = 0; i < b.count; i++) {
      const off = b.offset(i);
      const len = b.lengths[i]!;
      if (len < 14) { count(p.status.drops, 'runt'); continue; }
      if (carriesTag(buf, off, len)) { count(p.status.drops, 'double-tagged'); continue; }
      p.tOffsets[n] = off;
      p.tLengths[n] = len;
      n++;
    }
    if (n === 0) return;
    const sent = this.socket.sendBatch(buf, p.tOffsets, p.tLengths, n, p.tag);
    p.status.toTrunk += sent;
    this.txFrames += sent;
    if (sent < n) count(p.status.drops, 'trunk-send-refused', n - sent);
  }
}
