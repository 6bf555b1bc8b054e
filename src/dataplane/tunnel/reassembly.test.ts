import { describe, expect, it } from 'vitest';
import { MAX_OFFLOAD_BYTES, type FragmentHeader } from '../../protocol/inner.js';
import { Reassembler } from './reassembly.js';

function fragments(frame: Uint8Array, chunk: number, segment = 10, frameId = 1): [FragmentHeader, Uint8Array][] {
  const out: [FragmentHeader, Uint8Array][] = [];
  for (let off = 0; off < frame.length; off += chunk) {
    const len = Math.min(chunk, frame.length - off);
    out.push([{ segment, frameId, frameLength: frame.length, offset: off, chunkLength: len, last: off + len === frame.length }, frame.subarray(off, off + len)]);
  }
  return out;
}

const frame = Uint8Array.from({ length: 1514 }, (_, i) => (i * 7) & 0xff);

describe('Reassembler', () => {
  it('rebuilds a frame from fragments in any order, ignoring duplicates', () => {
    const r = new Reassembler();
    const fr = fragments(frame, 600);
    expect(r.add(fr[2]![0], fr[2]![1], 0, 0)).toBeUndefined();
    expect(r.add(fr[0]![0], fr[0]![1], 0, 1)).toBeUndefined();
    expect(r.add(fr[0]![0], fr[0]![1], 0, 1)).toBeUndefined();
    const whole = r.add(fr[1]![0], fr[1]![1], 0, 2);
    expect(whole).toEqual(frame);
    expect(r.size).toBe(0);
    expect(r.counters).toEqual({ completed: 1, dropped: 0 });
  });

  it('keeps frames of different segments and ids apart', () => {
    const r = new Reassembler();
    const a = fragments(frame, 1000, 10, 5);
    const b = fragments(frame.map((x) => x ^ 0xff), 1000, 20, 5);
    r.add(a[0]![0], a[0]![1], 0, 0);
    r.add(b[0]![0], b[0]![1], 0, 0);
    expect(r.add(b[1]![0], b[1]![1], 0, 0)).toEqual(frame.map((x) => x ^ 0xff));
    expect(r.add(a[1]![0], a[1]![1], 0, 0)).toEqual(frame);
  });

  it('gives up a frame after the timeout, and counts it', () => {
    const r = new Reassembler({ timeoutMs: 1000 });
    const fr = fragments(frame, 1000);
    r.add(fr[0]![0], fr[0]![1], 0, 0);
    expect(r.add(fr[1]![0], fr[1]![1], 0, 1000)).toBeUndefined();
    expect(r.counters.dropped).toBe(1);
  });

  it('bounds memory: at most maxPending frames, the oldest given up first', () => {
    const r = new Reassembler({ maxPending: 4 });
    for (let id = 0; id < 10; id++) {
      const fr = fragments(frame, 1000, 10, id);
      r.add(fr[0]![0], fr[0]![1], 0, id);
    }
    expect(r.size).toBe(4);
    expect(r.counters.dropped).toBe(6);
    const last = fragments(frame, 1000, 10, 9);
    expect(r.add(last[1]![0], last[1]![1], 0, 10)).toEqual(frame);
  });

  it('drops a frame whose chunks overlap instead of delivering garbage', () => {
    const r = new Reassembler();
    const h = (offset: number, chunkLength: number): FragmentHeader =>
      ({ segment: 1, frameId: 1, frameLength: 100, offset, chunkLength, last: offset + chunkLength === 100 });
    r.add(h(0, 60), frame, 0, 0);
    expect(r.add(h(50, 50), frame, 0, 0)).toBeUndefined();
    expect(r.counters).toEqual({ completed: 0, dropped: 1 });
  });

  it('reuses the memory of a released frame (zeroed), also for 64 KiB offload frames', () => {
    const r = new Reassembler();
    const add = (f: Uint8Array, id: number, limit?: number): Uint8Array | undefined => {
      let out: Uint8Array | undefined;
      for (const [h, c] of fragments(f, 1424, 10, id)) out = r.add(h, c, 0, 0, limit) ?? out;
      return out;
    };
    const a = add(frame, 1)!;
    expect(a).toEqual(frame);
    r.release(a);
    const small = frame.subarray(0, 100);
    const b = add(small, 2)!;
    expect(b.buffer).toBe(a.buffer);
    expect(b).toEqual(small);
    const big = Uint8Array.from({ length: 65_000 }, (_, i) => (i * 13) & 0xff);
    expect(add(big, 3)).toBeUndefined(); // beyond MAX_FRAME_BYTES without the offload limit
    const c = add(big, 4, MAX_OFFLOAD_BYTES)!;
    expect(c).toEqual(big);
    r.release(c);
    const d = add(big.subarray(0, 30_000), 5, MAX_OFFLOAD_BYTES)!;
    expect(d.buffer).toBe(c.buffer);
    expect(d).toEqual(big.subarray(0, 30_000));
  });
});
