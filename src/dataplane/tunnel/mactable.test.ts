import { describe, expect, it, vi } from 'vitest';
import { FULL_SWEEP_INTERVAL_MS, isGroupMac, LOCAL_PORT, macKey, macKeyString, MacTable } from './mactable.js';

const mac = (s: string): Uint8Array => Uint8Array.from(s.split(':').map((h) => parseInt(h, 16)));

describe('MacTable', () => {
  it('reads MACs as exact 48-bit keys', () => {
    expect(macKey(mac('ff:ff:ff:ff:ff:ff'), 0)).toBe(2 ** 48 - 1);
    expect(macKeyString(macKey(mac('02:00:5e:10:80:01'), 0))).toBe('02:00:5e:10:80:01');
    expect(isGroupMac(mac('01:00:5e:00:00:01'), 0)).toBe(true);
    expect(isGroupMac(mac('02:00:00:00:00:01'), 0)).toBe(false);
  });

  it('learns, looks up and ages out', () => {
    const t = new MacTable({ ageingMs: 1000 });
    expect(t.learn(1, LOCAL_PORT, 0)).toBe('learnt');
    expect(t.learn(1, LOCAL_PORT, 10)).toBe('known');
    expect(t.lookup(1, 500)).toBe(LOCAL_PORT);
    expect(t.lookup(1, 1010)).toBeUndefined();
    expect(t.size).toBe(0);
  });

  it('caps learning: a flood neither grows the table nor evicts known MACs', () => {
    const t = new MacTable({ maxEntries: 100 });
    t.learn(7, 2, 0);
    for (let m = 1000; m < 11_000; m++) t.learn(m, LOCAL_PORT, 1);
    expect(t.size).toBe(100);
    expect(t.counters.refused).toBe(10_000 - 99);
    expect(t.lookup(7, 2)).toBe(2);
  });

  it('a full table sweeps for aged-out MACs at most once a second, however hard it is flooded', () => {
    const t = new MacTable({ maxEntries: 1000, ageingMs: 5000 });
    for (let m = 0; m < 1000; m++) t.learn(m, LOCAL_PORT, 0);
    const sweep = vi.spyOn(t, 'sweep');
    for (let m = 10_000; m < 110_000; m++) t.learn(m, 1, 10 + (m % 500));
    expect(sweep).toHaveBeenCalledTimes(1);
    expect(t.counters.refused).toBe(100_000);
    // Once the old entries have aged out, the next sweep (a second later) makes room again.
    expect(t.learn(200_000, 1, 5000 + FULL_SWEEP_INTERVAL_MS)).toBe('learnt');
    expect(sweep).toHaveBeenCalledTimes(2);
    expect(t.size).toBe(1);
  });

  it('tells a flap (fast move) from a real move, and counts both', () => {
    const t = new MacTable({ flapWindowMs: 1000 });
    t.learn(5, LOCAL_PORT, 0);
    expect(t.learn(5, 1, 100)).toBe('flap');
    expect(t.learn(5, LOCAL_PORT, 200)).toBe('flap');
    expect(t.learn(5, 1, 5000)).toBe('moved');
    expect(t.counters).toMatchObject({ flaps: 2, moves: 1 });
    expect(t.lookup(5, 5001)).toBe(1);
  });

  it('forgets the MACs of a removed peer', () => {
    const t = new MacTable();
    t.learn(1, 1, 0);
    t.learn(2, 2, 0);
    t.forgetPort(1);
    expect(t.lookup(1, 1)).toBeUndefined();
    expect(t.lookup(2, 1)).toBe(2);
  });
});
