import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { APPLIANCE_NODE_OPTIONS } from './node-options.js';

const UNIT = new URL('../../appliance/rootfs/etc/systemd/system/nea.service', import.meta.url);

describe('APPLIANCE_NODE_OPTIONS', () => {
  it('are the options the image\'s unit starts node with', () => {
    const exec = readFileSync(UNIT, 'utf8').split('\n').find((l) => l.startsWith('ExecStart='));
    expect(exec).toBeDefined();
    const words = exec!.slice('ExecStart='.length).split(' ');
    expect(words[0]).toBe('/usr/local/bin/node');
    const script = words.findIndex((w) => w.endsWith('/nea.js'));
    expect(words.slice(1, script)).toEqual([...APPLIANCE_NODE_OPTIONS]);
  });

  it('cap the young generation of a process that allocates fast', () => {
    const program = 'let a = []; for (let i = 0; i < 3e6; i++) { a.push({ i }); if (a.length > 1e5) a = []; }' +
      'const s = require("v8").getHeapSpaceStatistics().find((x) => x.space_name === "new_space");' +
      'process.stdout.write(String(s.space_size));';
    const youngBytes = (opts: readonly string[]): number => {
      const r = spawnSync(process.execPath, [...opts, '-e', program], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      return Number(r.stdout);
    };
    const capped = youngBytes(APPLIANCE_NODE_OPTIONS);
    expect(capped).toBeLessThanOrEqual(4 * 1024 * 1024);
    expect(youngBytes([])).toBeGreaterThan(capped);
  });
});
