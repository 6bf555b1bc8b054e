import { describe, expect, it } from 'vitest';
import { SystemError, ValidationError } from '../shared/errors.js';
import {
  DEFAULT_BATCH_SIZE,
  DEFAULT_SLOT_SIZE,
  OFFLOAD_SLOT_SIZE,
  SlabBatch,
  checkIfName,
  copyFrames,
  invalidIfNameReason,
  packFrames,
  resolveDeviceOptions,
} from './packet-device.js';

describe('resolveDeviceOptions', () => {
  it('fills in defaults', () => {
    expect(resolveDeviceOptions()).toEqual({ batchSize: DEFAULT_BATCH_SIZE, slotSize: DEFAULT_SLOT_SIZE, multiQueue: false, offload: false, writerThread: false });
    expect(resolveDeviceOptions({ offload: true })).toEqual({ batchSize: DEFAULT_BATCH_SIZE, slotSize: OFFLOAD_SLOT_SIZE, multiQueue: false, offload: true, writerThread: false });
  });

  it.each([
    [{ batchSize: 0 }, /batchSize must be an integer from 1 to 4096 frames, got 0/],
    [{ batchSize: 4097 }, /batchSize/],
    [{ batchSize: 1.5 }, /batchSize/],
    [{ slotSize: 63 }, /slotSize must be an integer from 64 to 131072 bytes, got 63/],
    [{ slotSize: 131_073 }, /slotSize/],
  ])('refuses %j', (opts, message) => {
    expect(() => resolveDeviceOptions(opts)).toThrow(ValidationError);
    expect(() => resolveDeviceOptions(opts)).toThrow(message);
  });

  it('accepts the limits', () => {
    expect(resolveDeviceOptions({ batchSize: 4096, slotSize: 64, multiQueue: true })).toEqual({ batchSize: 4096, slotSize: 64, multiQueue: true, offload: false, writerThread: false });
    expect(resolveDeviceOptions({ writerThread: true }).writerThread).toBe(true);
    expect(resolveDeviceOptions({ batchSize: 1, slotSize: 131_072 }).slotSize).toBe(131_072);
  });
});

describe('interface names', () => {
  it.each([
    ['tap0', undefined],
    ['a-very-long-nam', undefined],
    ['', 'it is empty'],
    ['a-very-long-name', 'it has 16 bytes; Linux allows at most 15'],
    ['ééééééééé', 'it has 18 bytes; Linux allows at most 15'],
    ['.', 'it is "." or ".."'],
    ['..', 'it is "." or ".."'],
    ['a/b', 'it contains "/", ":" or white space'],
    ['eth0:1', 'it contains "/", ":" or white space'],
    ['tap 0', 'it contains "/", ":" or white space'],
  ])('%j -> %s', (name, reason) => {
    expect(invalidIfNameReason(name)).toBe(reason);
  });

  it('checkIfName throws TUN_NAME_INVALID with a one-line message', () => {
    let caught: unknown;
    try { checkIfName('tap', 'a-very-long-name'); } catch (e) { caught = e; }
    expect(caught).toBeInstanceOf(SystemError);
    const e = caught as SystemError;
    expect(e.code).toBe('TUN_NAME_INVALID');
    expect(e.errno).toBe('ENAMETOOLONG');
    expect(e.message).toMatch(/^cannot open TAP "a-very-long-name": not a valid interface name \(it has 16 bytes/);
    expect(e.message).not.toContain('\n');
    expect(() => { checkIfName('tun', 'x:y'); }).toThrow(expect.objectContaining({ code: 'TUN_NAME_INVALID', errno: 'EINVAL' }) as Error);
    expect(() => { checkIfName('tap', 'ok0'); }).not.toThrow();
  });
});

describe('SlabBatch', () => {
  it('views frame i in place at i * slotSize', () => {
    const slab = Buffer.alloc(4 * 64);
    const lengths = new Uint32Array(4);
    const batch = new SlabBatch(slab, 64, lengths);
    slab.write('hello', 64);
    lengths[1] = 5;
    batch.count = 2;
    expect(batch.offset(1)).toBe(64);
    expect(batch.frame(1).toString()).toBe('hello');
    slab.write('J', 64);
    expect(batch.frame(1).toString()).toBe('Jello'); // a view, not a copy
  });

  it('refuses indexes outside the batch', () => {
    const batch = new SlabBatch(Buffer.alloc(128), 64, new Uint32Array(2));
    batch.count = 1;
    expect(() => batch.frame(1)).toThrow(/the batch has 1 frames/);
    expect(() => batch.frame(-1)).toThrow(RangeError);
  });
});

describe('packFrames / copyFrames', () => {
  it('lays frames out back to back and copies them out again', () => {
    const frames = [Buffer.from('abc'), Buffer.from(''), Buffer.from('defgh')];
    const p = packFrames(frames);
    expect(p.count).toBe(3);
    expect([...p.offsets]).toEqual([0, 3, 3]);
    expect([...p.lengths]).toEqual([3, 0, 5]);
    expect(p.buffer.toString()).toBe('abcdefgh');

    const batch = new SlabBatch(Buffer.alloc(3 * 64), 64, new Uint32Array(3));
    frames.forEach((f, i) => { batch.buffer.set(f, i * 64); batch.lengths[i] = f.length; });
    batch.count = 3;
    const copies = copyFrames(batch);
    batch.buffer.fill(0);
    expect(copies.map((c) => c.toString())).toEqual(['abc', '', 'defgh']);
  });
});
