import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { writeFileAtomic } from './atomic-file.js';

describe('writeFileAtomic', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nea-atomic-'));
  afterEach(() => { rmSync(dir, { recursive: true, force: true }); });

  it('replaces the content, creates missing directories and leaves no temporary file', () => {
    const f = join(dir, 'sub', 'state.json');
    writeFileAtomic(f, '{"v":1}');
    writeFileAtomic(f, '{"v":2}');
    expect(readFileSync(f, 'utf8')).toBe('{"v":2}');
    expect(readdirSync(join(dir, 'sub'))).toEqual(['state.json']);
    expect(statSync(f).mode & 0o777).toBe(0o600);
  });
});
