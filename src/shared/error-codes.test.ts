import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from './error-codes.js';

const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');

describe('error code registry', () => {
  it('documents every code in docs/errors.md with its HTTP status', () => {
    const missing = Object.entries(ERROR_CODES)
      .filter(([code, e]) => !doc.includes(`| \`${code}\` | ${e.status} |`))
      .map(([code]) => code);
    expect(missing).toEqual([]);
  });

  it('documents no code the registry lacks', () => {
    const documented = [...doc.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]);
    expect(documented.filter((c) => !(c! in ERROR_CODES))).toEqual([]);
    expect(new Set(documented).size).toBe(documented.length);
  });

  it('gives every code a 4xx or 5xx status and a summary', () => {
    for (const [code, e] of Object.entries(ERROR_CODES)) {
      expect(e.status, code).toBeGreaterThanOrEqual(400);
      expect(e.status, code).toBeLessThan(600);
      expect(e.summary.length, code).toBeGreaterThan(10);
    }
  });
});
