/**
 * Classic BPF programs for packet sockets on a trunk (pure).
 *
 * With kernel VLAN devices the kernel itself takes a trunk frame to the VLAN
 * device of its id, and silently drops frames of other VLANs. The trunk
 * monitor counts those drops with a packet socket whose filter lets through
 * only what the trunk guard would drop: untagged frames, foreign TPIDs,
 * foreign VLAN ids, and frames of our VLANs that carry a second tag inside
 * (the kernel would hand those to the segment). Everything else never leaves
 * the kernel. Accepted frames are cut to `snap` bytes: the monitor only
 * classifies them.
 *
 * The program reads the outer tag from the skb's metadata (the kernel has
 * already taken it out of the bytes: SKF_AD_VLAN_TAG_PRESENT, SKF_AD_VLAN_TPID,
 * SKF_AD_VLAN_TAG), and the inner EtherType at byte 12 of what is left.
 */
import { TPID_8021AD, TPID_8021Q, TPID_QINQ_LEGACY } from '../../protocol/vlan.js';

/** One instruction: struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }. */
export interface BpfInsn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/** Opcodes used here (linux/bpf_common.h). */
export const BPF = {
  LD_W_ABS: 0x20,
  LD_H_ABS: 0x28,
  JEQ_K: 0x15,
  AND_K: 0x54,
  RET_K: 0x06,
} as const;

/** Ancillary loads (linux/filter.h): SKF_AD_OFF + SKF_AD_*. */
export const SKF_AD = {
  VLAN_TAG: 0xfffff000 + 44,
  VLAN_TAG_PRESENT: 0xfffff000 + 48,
  VLAN_TPID: 0xfffff000 + 60,
} as const;

/** Most VLANs the monitor filter lists one by one (a conditional jump reaches at most 255 instructions). */
export const MAX_FILTER_VLANS = 200;

/** Default bytes kept of each monitored frame: enough for the MAC header, tags and some payload. */
export const MONITOR_SNAP = 64;

/**
 * The monitor filter for a trunk carrying `vlans`: passes (cut to `snap`
 * bytes) exactly the frames {@link classifyTrunkFrame} would drop. With more
 * than {@link MAX_FILTER_VLANS} VLANs it passes every frame and the monitor
 * classifies them all.
 */
export function trunkMonitorFilter(vlans: readonly number[], snap = MONITOR_SNAP): BpfInsn[] {
  const ret = (k: number): BpfInsn => ({ code: BPF.RET_K, jt: 0, jf: 0, k });
  if (vlans.length > MAX_FILTER_VLANS || vlans.length === 0) return [ret(snap)];
  const n = vlans.length;
  // Layout (indexes):
  //   0      ld vlan_tag_present
  //   1      jeq #0            -> PASS (untagged)
  //   2      ld vlan_tpid
  //   3      jeq #0x8100 ? next : PASS (foreign tpid)
  //   4      ld vlan_tag
  //   5      and #0xfff
  //   6+i    jeq #vlan_i       -> INNER
  //   6+n    ret #snap         (foreign vlan)
  //   INNER  ldh [12]; jeq 0x8100 -> PASS; jeq 0x88a8 -> PASS; jeq 0x9100 -> PASS; ret #0
  //   PASS   ret #snap
  const inner = 7 + n;
  const pass = inner + 5;
  const prog: BpfInsn[] = [
    { code: BPF.LD_W_ABS, jt: 0, jf: 0, k: SKF_AD.VLAN_TAG_PRESENT },
    { code: BPF.JEQ_K, jt: pass - 2, jf: 0, k: 0 },
    { code: BPF.LD_W_ABS, jt: 0, jf: 0, k: SKF_AD.VLAN_TPID },
    { code: BPF.JEQ_K, jt: 0, jf: pass - 4, k: TPID_8021Q },
    { code: BPF.LD_W_ABS, jt: 0, jf: 0, k: SKF_AD.VLAN_TAG },
    { code: BPF.AND_K, jt: 0, jf: 0, k: 0x0fff },
  ];
  vlans.forEach((v, i) => { prog.push({ code: BPF.JEQ_K, jt: inner - (6 + i) - 1, jf: 0, k: v }); });
  prog.push(ret(snap));
  prog.push({ code: BPF.LD_H_ABS, jt: 0, jf: 0, k: 12 });
  prog.push({ code: BPF.JEQ_K, jt: pass - (inner + 1) - 1, jf: 0, k: TPID_8021Q });
  prog.push({ code: BPF.JEQ_K, jt: pass - (inner + 2) - 1, jf: 0, k: TPID_8021AD });
  prog.push({ code: BPF.JEQ_K, jt: pass - (inner + 3) - 1, jf: 0, k: TPID_QINQ_LEGACY });
  prog.push(ret(0));
  prog.push(ret(snap));
  return prog;
}

/** The program as `struct sock_filter` bytes in host (little-endian) order, for SO_ATTACH_FILTER. */
export function encodeBpf(prog: readonly BpfInsn[]): Uint8Array {
  const out = Buffer.alloc(prog.length * 8);
  prog.forEach((p, i) => {
    out.writeUInt16LE(p.code, i * 8);
    out.writeUInt8(p.jt, i * 8 + 2);
    out.writeUInt8(p.jf, i * 8 + 3);
    out.writeUInt32LE(p.k >>> 0, i * 8 + 4);
  });
  return out;
}

/**
 * Runs `prog` over one frame as the kernel would, for tests: `meta` is the
 * skb's VLAN metadata, `frame` the bytes. Returns the accept length (0: drop).
 */
export function runBpf(prog: readonly BpfInsn[], frame: Uint8Array, meta: { tag: number }): number {
  let a = 0;
  for (let pc = 0; pc < prog.length;) {
    const p = prog[pc]!;
    switch (p.code) {
      case BPF.LD_W_ABS:
        if (p.k === SKF_AD.VLAN_TAG_PRESENT) a = meta.tag !== 0 ? 1 : 0;
        else if (p.k === SKF_AD.VLAN_TPID) a = meta.tag >>> 16;
        else if (p.k === SKF_AD.VLAN_TAG) a = meta.tag & 0xffff;
        else a = ((frame[p.k]! << 24) | (frame[p.k + 1]! << 16) | (frame[p.k + 2]! << 8) | frame[p.k + 3]!) >>> 0;
        pc++;
        break;
      case BPF.LD_H_ABS:
        if (p.k + 2 > frame.length) return 0;
        a = (frame[p.k]! << 8) | frame[p.k + 1]!;
        pc++;
        break;
      case BPF.AND_K:
        a = (a & p.k) >>> 0;
        pc++;
        break;
      case BPF.JEQ_K:
        pc += 1 + (a === p.k ? p.jt : p.jf);
        break;
      case BPF.RET_K:
        return Math.min(p.k, frame.length);
      default:
        throw new Error(`runBpf: opcode 0x${p.code.toString(16)} not supported`);
    }
  }
  return 0;
}
