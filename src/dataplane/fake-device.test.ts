import { describe, expect, it } from 'vitest';
import { SystemError } from '../shared/errors.js';
import { createFakePair } from './fake-device.js';
import { MAX_BATCHES_PER_WAKEUP, copyFrames, packFrames, type PacketBatch } from './packet-device.js';

/** A 60-byte Ethernet frame whose payload starts with `seq` (uint32). */
function frame(seq: number, len = 60): Buffer {
  const f = Buffer.alloc(len);
  f.fill(0xff, 0, 6);
  f.writeUInt16BE(0x88b5, 12);
  f.writeUInt32BE(seq, 14);
  return f;
}

const seqOf = (f: Buffer): number => f.readUInt32BE(14);
const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('fake device pair', () => {
  it('delivers what one end writes to the other, in order, in batches', async () => {
    const [a, b] = createFakePair({}, { batchSize: 16 });
    const got: number[] = [];
    const sizes: number[] = [];
    b.onBatch((batch) => {
      sizes.push(batch.count);
      for (let i = 0; i < batch.count; i++) got.push(seqOf(batch.frame(i)));
    });
    const p = packFrames(Array.from({ length: 100 }, (_, i) => frame(i)));
    expect(a.writeBatch(p.buffer, p.offsets, p.lengths, p.count)).toBe(100);
    expect(a.write(frame(100))).toBe(true);
    while (got.length < 101) await nextTurn();
    expect(got).toEqual(Array.from({ length: 101 }, (_, i) => i));
    expect(sizes.every((n) => n <= 16)).toBe(true);
    expect(sizes.length).toBeLessThan(101);
    expect(a.counters()).toMatchObject({ txFrames: 101, txBytes: 101 * 60, txDrops: 0 });
    expect(b.counters()).toMatchObject({ rxFrames: 101, rxBytes: 101 * 60, rxBatches: sizes.length, rxDrops: 0 });
    a.close();
    b.close();
  });

  it('delivers at most MAX_BATCHES_PER_WAKEUP batches per event-loop turn', async () => {
    const [a, b] = createFakePair({}, { batchSize: 4 });
    let batches = 0;
    b.onBatch(() => { batches++; });
    for (let i = 0; i < 4 * (2 * MAX_BATCHES_PER_WAKEUP + 1); i++) a.write(frame(i));
    await nextTurn();
    expect(batches).toBe(MAX_BATCHES_PER_WAKEUP);
    await nextTurn();
    expect(batches).toBe(2 * MAX_BATCHES_PER_WAKEUP);
    await nextTurn();
    expect(batches).toBe(2 * MAX_BATCHES_PER_WAKEUP + 1);
    a.close();
    b.close();
  });

  it('reuses the slab: a view kept after the handler returns is overwritten', async () => {
    const [a, b] = createFakePair();
    let kept: Buffer | undefined;
    let copy: Buffer[] = [];
    b.onBatch((batch: PacketBatch) => { kept = batch.frame(0); copy = copyFrames(batch); });
    a.write(frame(42));
    while (!kept) await nextTurn();
    expect(seqOf(copy[0]!)).toBe(42);
    expect(kept.every((x) => x === 0xdd)).toBe(true);
    a.close();
    b.close();
  });

  it('holds frames while idle or paused and delivers them on resume', async () => {
    const [a, b] = createFakePair();
    a.write(frame(1));
    await nextTurn();
    expect(b.state).toBe('idle');
    expect(b.queued).toBe(1);
    const got: number[] = [];
    b.pause();
    b.onBatch((batch) => { for (let i = 0; i < batch.count; i++) got.push(seqOf(batch.frame(i))); });
    a.write(frame(2));
    await nextTurn();
    expect(b.state).toBe('paused');
    expect(got).toEqual([]);
    b.resume();
    expect(b.state).toBe('reading');
    await nextTurn();
    expect(got).toEqual([1, 2]);
    a.close();
    b.close();
  });

  it('pausing inside the handler stops delivery after that batch', async () => {
    const [a, b] = createFakePair({}, { batchSize: 2 });
    const sizes: number[] = [];
    b.onBatch((batch) => { sizes.push(batch.count); b.pause(); });
    for (let i = 0; i < 6; i++) a.write(frame(i));
    await nextTurn();
    await nextTurn();
    expect(sizes).toEqual([2]);
    expect(b.queued).toBe(4);
    b.resume();
    await nextTurn();
    expect(sizes).toEqual([2, 2]);
    a.close();
    b.close();
  });

  it('drops beyond the receive queue and frames longer than a slot, and counts them', async () => {
    const [a, b] = createFakePair({}, { queueLength: 5, slotSize: 64 });
    for (let i = 0; i < 8; i++) a.write(frame(i));
    a.write(frame(99, 65));
    expect(b.queued).toBe(5);
    expect(b.counters().rxDrops).toBe(4);
    let n = 0;
    b.onBatch((batch) => { n += batch.count; });
    while (n < 5) await nextTurn();
    expect(a.counters().txFrames).toBe(9);
    a.close();
    b.close();
  });

  it('refused writes return false / a short count, counted in txDrops', () => {
    const [a, b] = createFakePair();
    a.setWritable(false);
    const p = packFrames([frame(1), frame(2), frame(3)]);
    expect(a.write(frame(0))).toBe(false);
    expect(a.writeBatch(p.buffer, p.offsets, p.lengths, 3)).toBe(0);
    expect(a.counters()).toMatchObject({ txFrames: 0, txDrops: 4 });
    a.setWritable(true);
    expect(a.writeBatch(p.buffer, p.offsets, p.lengths, 3)).toBe(3);
    a.close();
    b.close();
  });

  it('refuses frames shorter than an Ethernet header and batches beyond the buffer', () => {
    const [a, b] = createFakePair();
    expect(() => a.write(Buffer.alloc(13))).toThrow(expect.objectContaining({ code: 'TUN_WRITE_FAILED', errno: 'EINVAL', written: 0 }) as Error);
    const p = packFrames([frame(1), Buffer.alloc(3)]);
    expect(() => a.writeBatch(p.buffer, p.offsets, p.lengths, 2)).toThrow(expect.objectContaining({ written: 1 }) as Error);
    expect(() => a.writeBatch(p.buffer, new Uint32Array([0]), new Uint32Array([100]), 1)).toThrow(RangeError);
    expect(() => a.writeBatch(p.buffer, p.offsets, p.lengths, 3)).toThrow(RangeError);
    a.close();
    b.close();
  });

  it('reports a read failure once to the error handler and stops reading', async () => {
    const [a, b] = createFakePair();
    const errors: SystemError[] = [];
    let n = 0;
    b.onError((e) => errors.push(e));
    b.onBatch((batch) => { n += batch.count; });
    b.failReading('EBADFD');
    b.failReading('EBADFD');
    a.write(frame(1));
    await nextTurn();
    expect(b.state).toBe('failed');
    expect(n).toBe(0);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'TUN_READ_FAILED', errno: 'EBADFD' });
    a.close();
    b.close();
  });

  it('a closed end refuses calls with TUN_CLOSED; close is idempotent', async () => {
    const [a, b] = createFakePair();
    let n = 0;
    b.onBatch((batch) => { n += batch.count; });
    a.write(frame(1));
    b.close();
    b.close();
    await nextTurn();
    expect(n).toBe(0);
    expect(b.state).toBe('closed');
    expect(() => b.write(frame(1))).toThrow(expect.objectContaining({ code: 'TUN_CLOSED' }) as Error);
    expect(() => { b.resume(); }).toThrow(SystemError);
    expect(a.write(frame(2))).toBe(true); // the peer is gone: frames vanish, as on a link without a reader
    a.close();
  });
});
