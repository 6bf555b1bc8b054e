import { describe, expect, it } from 'vitest';
import { Progress } from './progress.js';

describe('Progress', () => {
  it('ticks finished steps with their duration and crosses failed ones', async () => {
    let out = '';
    let t = 0;
    const p = new Progress({ write: (s) => { out += s; } }, () => t);
    expect(await p.step('build', () => { t += 25; return 7; })).toBe(7);
    await expect(p.step('start', () => { t += 5; throw new Error('port busy'); })).rejects.toThrow('port busy');
    expect(out).toBe('  \u2713 build (25 ms)\n  \u2717 start: port busy\n');
    expect(p.elapsed()).toBe(30);
  });
});
