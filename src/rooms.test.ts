/**
 * The rooms of src/ import one way only (docs/architecture.md). This test
 * reads every source file's imports and fails on a forbidden one.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname);

/** room -> rooms it may import (besides itself). */
const ALLOWED: Record<string, readonly string[]> = {
  shared: [],
  protocol: ['shared'],
  native: ['shared'],
  netconfig: ['native', 'shared'],
  dataplane: ['native', 'protocol', 'shared'],
  appliance: ['dataplane', 'netconfig', 'native', 'protocol', 'shared'],
  control: ['protocol', 'shared'],
  bench: ['dataplane', 'netconfig', 'native', 'protocol', 'shared'],
  lab: ['control', 'appliance', 'dataplane', 'netconfig', 'protocol', 'shared', 'native'],
  cli: ['protocol', 'shared', 'appliance', 'control', 'bench', 'lab', 'netconfig', 'native', 'dataplane'],
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

function roomOf(file: string): string | undefined {
  const rel = relative(SRC, file);
  return rel.includes('/') ? rel.split('/')[0] : undefined;
}

describe('room boundaries', () => {
  it('every room is known', () => {
    const rooms = readdirSync(SRC).filter((n) => statSync(join(SRC, n)).isDirectory());
    expect(rooms.filter((r) => !(r in ALLOWED))).toEqual([]);
  });

  it('no source file imports a room it may not', () => {
    const bad: string[] = [];
    for (const f of files(SRC)) {
      const from = roomOf(f);
      if (from === undefined || f.endsWith('.test.ts')) continue;
      const text = readFileSync(f, 'utf8');
      for (const m of text.matchAll(/(?:^|\s)(?:import|export)\s[^'"]*?from\s+['"](\.[^'"]+)['"]/gm)) {
        const to = roomOf(resolve(dirname(f), m[1]!));
        if (to !== undefined && to !== from && !ALLOWED[from]!.includes(to)) bad.push(`${relative(SRC, f)} imports ${m[1]!} (${from} -> ${to})`);
      }
    }
    expect(bad).toEqual([]);
  });
});
