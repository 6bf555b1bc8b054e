import { describe, expect, it } from 'vitest';
import { Lifecycle, type Startable } from './lifecycle.js';

function part(name: string, log: string[], failStart = false, failStop = false): Startable {
  return {
    name,
    start: () => { if (failStart) throw new Error(`${name} start failed`); log.push(`start ${name}`); },
    stop: () => { log.push(`stop ${name}`); if (failStop) throw new Error(`${name} stop failed`); },
  };
}

describe('Lifecycle', () => {
  it('starts in order and stops in reverse', async () => {
    const log: string[] = [];
    const lc = new Lifecycle().add(part('a', log)).add(part('b', log)).add(part('c', log));
    await lc.start();
    await lc.stop();
    expect(log).toEqual(['start a', 'start b', 'start c', 'stop c', 'stop b', 'stop a']);
  });

  it('a failed start stops what already started and rethrows', async () => {
    const log: string[] = [];
    const lc = new Lifecycle().add(part('a', log)).add(part('b', log)).add(part('c', log, true));
    await expect(lc.start()).rejects.toThrow('c start failed');
    expect(log).toEqual(['start a', 'start b', 'stop b', 'stop a']);
  });

  it('stops every part even when one fails, then reports the first error', async () => {
    const log: string[] = [];
    const lc = new Lifecycle().add(part('a', log)).add(part('b', log, false, true));
    await lc.start();
    await expect(lc.stop()).rejects.toThrow('b stop failed');
    expect(log).toEqual(['start a', 'start b', 'stop b', 'stop a']);
  });
});
