/**
 * A lab-grade 802.1Q switch in user space: it plays the service provider's
 * (or a production site's) physical switch in tests and in the lab, on a
 * kernel that cannot make VLAN access ports. It is not product code: the
 * appliance never uses it.
 *
 * Ports are TAP devices whose far end is a host's interface. A port is
 *   - `access`: one VLAN, untagged on the wire; a frame arriving with a tag
 *     is dropped (`tagged-on-access`);
 *   - `trunk`: a list of allowed VLANs (or all), tagged on the wire; a frame
 *     of a VLAN not allowed is dropped (`vlan-not-allowed`); untagged frames
 *     (and 802.1ad/0x9100 frames, which an 802.1Q switch does not take for
 *     tags) belong to the `native` VLAN, else are dropped
 *     (`untagged-on-trunk`). Only the OUTER tag is the switch's: an inner tag
 *     is payload, as on real switches (a double-tagged frame stays
 *     double-tagged).
 * Learning is per VLAN (independent VLAN learning: the same MAC in two VLANs
 * is two entries), capped per VLAN; a full table floods (`refused`).
 * Forwarding: known unicast to its port, everything else flooded to the
 * VLAN's other member ports.
 *
 * Per ingress batch (one TAP read): classify and learn each frame; queue it
 * for each egress port (access: a view of the ingress slab, untagged; trunk:
 * a copy with the tag in the port's transmit slab); then one writeBatch per
 * port. What a port's queue refuses is dropped and counted (`tx-refused`).
 */
import { MacTable, isGroupMac, macKey } from '../../dataplane/tunnel/mactable.js';
import { DeviceWriteError, type PacketBatch, type PacketDevice } from '../../dataplane/packet-device.js';
import { TPID_8021Q, etherTypeAt, isTagEtherType } from '../../protocol/vlan.js';

export interface AccessPortConfig {
  name: string;
  mode: 'access';
  vlan: number;
}

export interface TrunkPortConfig {
  name: string;
  mode: 'trunk';
  /** Allowed VLANs; `all`: every VLAN 1..4094. */
  vlans: number[] | 'all';
  /** VLAN of untagged frames (sent untagged); absent: untagged frames are dropped. */
  native?: number;
}

export type FabricPortConfig = AccessPortConfig | TrunkPortConfig;

export interface SwitchPort {
  cfg: FabricPortConfig;
  device: PacketDevice;
}

export interface FabricPortStatus {
  name: string;
  mode: 'access' | 'trunk';
  rxFrames: number;
  txFrames: number;
  drops: Record<string, number>;
}

export interface FabricSwitchStatus {
  name: string;
  /** MACs learnt, per VLAN. */
  macs: Record<string, number>;
  /** New MACs not learnt because a VLAN's table was full. */
  refused: number;
  ports: FabricPortStatus[];
}

interface PortState {
  readonly index: number;
  readonly cfg: FabricPortConfig;
  readonly device: PacketDevice;
  readonly allowed: Uint8Array;
  readonly status: FabricPortStatus;
  // Egress queue of the current ingress batch: views (access) or slots of `tx` (trunk).
  readonly qOffsets: Uint32Array;
  readonly qLengths: Uint32Array;
  qCount: number;
  qBuffer: Uint8Array | undefined;
  readonly tx: Buffer;
  readonly txSlot: number;
}

function count(r: Record<string, number>, reason: string, n = 1): void {
  r[reason] = (r[reason] ?? 0) + n;
}

export class FabricSwitch {
  /** Ports by index; a removed port leaves a hole, so learnt indexes never point at another port. */
  private readonly ports: (PortState | undefined)[] = [];
  private readonly tables = new Map<number, MacTable>();
  private readonly members: PortState[][] = [];
  private readonly macLimit: number;
  private readonly now: () => number;
  private started = false;

  constructor(readonly name: string, ports: readonly SwitchPort[], opts: { macLimit?: number; now?: () => number } = {}) {
    this.macLimit = opts.macLimit ?? 8192;
    this.now = opts.now ?? (() => performance.now());
    for (let v = 0; v < 4096; v++) this.members.push([]);
    for (const p of ports) this.addPort(p);
  }

  /** Names of the ports, in the order they were added. */
  portNames(): string[] {
    return this.ports.flatMap((p) => (p ? [p.cfg.name] : []));
  }

  /**
   * Adds a port at run time (a VM's NIC plugged into a port group). The
   * switch takes ownership of `p.device` (closed on removal or stop). A
   * port name is unique per switch: a duplicate throws and the device is
   * left to the caller.
   */
  addPort(p: SwitchPort): void {
    if (this.ports.some((q) => q?.cfg.name === p.cfg.name)) throw new Error(`switch ${this.name}: port ${p.cfg.name} exists`);
    const allowed = new Uint8Array(4096);
    if (p.cfg.mode === 'access') allowed[p.cfg.vlan] = 1;
    else if (p.cfg.vlans === 'all') allowed.fill(1, 1, 4095);
    else for (const v of p.cfg.vlans) allowed[v] = 1;
    if (p.cfg.mode === 'trunk' && p.cfg.native !== undefined) allowed[p.cfg.native] = 1;
    const rx = p.device.batchSize * 8;
    const txSlot = p.device.slotSize + 4;
    let index = this.ports.indexOf(undefined);
    if (index < 0) index = this.ports.length;
    const st: PortState = {
      index, cfg: p.cfg, device: p.device, allowed,
      status: { name: p.cfg.name, mode: p.cfg.mode, rxFrames: 0, txFrames: 0, drops: {} },
      qOffsets: new Uint32Array(rx), qLengths: new Uint32Array(rx), qCount: 0, qBuffer: undefined,
      tx: p.cfg.mode === 'trunk' ? Buffer.alloc(rx * txSlot) : Buffer.alloc(0), txSlot,
    };
    this.ports[index] = st;
    for (let v = 1; v < 4095; v++) if (allowed[v]) this.members[v]!.push(st);
    if (this.started) this.listen(st);
  }

  /**
   * Removes a port at run time: its MACs are forgotten (frames to them flood
   * again), its device is closed. False when there is no such port.
   */
  removePort(name: string): boolean {
    const st = this.ports.find((p) => p?.cfg.name === name);
    if (!st) return false;
    this.ports[st.index] = undefined;
    for (let v = 1; v < 4095; v++) {
      if (!st.allowed[v]) continue;
      const m = this.members[v]!;
      const i = m.indexOf(st);
      if (i >= 0) m.splice(i, 1);
    }
    for (const t of this.tables.values()) t.forgetPort(st.index);
    st.device.close();
    return true;
  }

  start(): void {
    this.started = true;
    for (const p of this.ports) if (p) this.listen(p);
  }

  stop(): void {
    for (const p of this.ports) p?.device.close();
  }

  private listen(p: PortState): void {
    p.device.onBatch((b) => { this.onFrames(p, b); });
  }

  status(): FabricSwitchStatus {
    const macs: Record<string, number> = {};
    let refused = 0;
    for (const [v, t] of this.tables) {
      if (t.size > 0) macs[String(v)] = t.size;
      refused += t.counters.refused;
    }
    return { name: this.name, macs, refused, ports: this.ports.flatMap((p) => (p ? [{ ...p.status, drops: { ...p.status.drops } }] : [])) };
  }

  private table(vlan: number): MacTable {
    let t = this.tables.get(vlan);
    if (!t) { t = new MacTable({ maxEntries: this.macLimit }); this.tables.set(vlan, t); }
    return t;
  }

  private onFrames(inp: PortState, b: PacketBatch): void {
    const buf = b.buffer;
    const now = this.now();
    inp.status.rxFrames += b.count;
    for (let i = 0; i < b.count; i++) {
      let off = b.offset(i);
      let len = b.lengths[i]!;
      if (len < 14) { count(inp.status.drops, 'runt'); continue; }
      // The frame's VLAN, and the frame without its outer 802.1Q tag at buf[off, off+len).
      let vlan: number;
      const type = etherTypeAt(buf, off);
      if (inp.cfg.mode === 'access') {
        if (isTagEtherType(type)) { count(inp.status.drops, 'tagged-on-access'); continue; }
        vlan = inp.cfg.vlan;
      } else if (type === TPID_8021Q && len >= 18) {
        vlan = ((buf[off + 14]! << 8) | buf[off + 15]!) & 0x0fff;
        if (vlan === 0 && inp.cfg.native !== undefined) vlan = inp.cfg.native; // priority-tagged
        if (!inp.allowed[vlan] || vlan === 0 || vlan === 4095) { count(inp.status.drops, 'vlan-not-allowed'); continue; }
        buf.copyWithin(off + 4, off, off + 12); // untag in place: the MAC addresses move over the tag
        off += 4;
        len -= 4;
      } else {
        if (inp.cfg.native === undefined) { count(inp.status.drops, 'untagged-on-trunk'); continue; }
        vlan = inp.cfg.native;
      }
      const t = this.table(vlan);
      if (!isGroupMac(buf, off + 6)) t.learn(macKey(buf, off + 6), inp.index, now);
      const to = isGroupMac(buf, off) ? undefined : t.lookup(macKey(buf, off), now);
      if (to !== undefined) {
        const out = this.ports[to];
        if (out && out !== inp && out.allowed[vlan]) this.queue(out, buf, off, len, vlan);
        continue;
      }
      for (const out of this.members[vlan]!) if (out !== inp) this.queue(out, buf, off, len, vlan);
    }
    for (const p of this.ports) if (p) this.flush(p);
  }

  /** Queues the untagged frame buf[off, off+len) of `vlan` for `out`, tagged if `out` is a trunk (and not its native VLAN). */
  private queue(out: PortState, buf: Buffer, off: number, len: number, vlan: number): void {
    if (out.qCount === out.qOffsets.length) this.flush(out);
    const i = out.qCount;
    if (out.cfg.mode === 'access') {
      if (out.qBuffer !== undefined && out.qBuffer !== buf) this.flush(out);
      out.qBuffer = buf;
      out.qOffsets[i] = off;
      out.qLengths[i] = len;
    } else {
      const slot = i * out.txSlot;
      const tagged = vlan !== out.cfg.native;
      if (len + 4 > out.txSlot) { count(out.status.drops, 'too-big'); return; }
      buf.copy(out.tx, slot, off, off + 12);
      let at = slot + 12;
      if (tagged) {
        out.tx.writeUInt16BE(TPID_8021Q, at);
        out.tx.writeUInt16BE(vlan, at + 2);
        at += 4;
      }
      buf.copy(out.tx, at, off + 12, off + len);
      out.qBuffer = out.tx;
      out.qOffsets[i] = slot;
      out.qLengths[i] = len + (tagged ? 4 : 0);
    }
    out.qCount++;
  }

  private flush(p: PortState): void {
    if (p.qCount === 0 || p.qBuffer === undefined) return;
    let n: number;
    try {
      n = p.device.writeBatch(p.qBuffer, p.qOffsets, p.qLengths, p.qCount);
    } catch (e) {
      // The host end is down (EIO): the rest of the batch is lost, as on a real port.
      n = e instanceof DeviceWriteError ? e.written : 0;
    }
    p.status.txFrames += n;
    if (n < p.qCount) count(p.status.drops, 'tx-refused', p.qCount - n);
    p.qCount = 0;
    p.qBuffer = undefined;
  }
}
