import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeKey } from '../dataplane/wg/crypto.js';
import { loadOrCreatePrivateKey } from './keys.js';

describe('appliance key', () => {
  const dirs: string[] = [];
  const dir = (): string => { const d = mkdtempSync(join(tmpdir(), 'nea-keys-')); dirs.push(d); return d; };
  afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

  it('is generated once (mode 0600) and the same on every later start', () => {
    const d = dir();
    const first = loadOrCreatePrivateKey(undefined, d);
    expect(first.source).toBe('generated');
    expect(statSync(join(d, 'private.key')).mode & 0o777).toBe(0o600);
    const again = loadOrCreatePrivateKey(undefined, d);
    expect(again.source).toBe('state-dir');
    expect(encodeKey(again.privateKey)).toBe(encodeKey(first.privateKey));
  });

  it('prefers the key of the config', () => {
    const k = Buffer.alloc(32, 3).toString('base64');
    expect(encodeKey(loadOrCreatePrivateKey(k, dir()).privateKey)).toBe(k);
  });

  it('refuses a damaged key file instead of replacing it', () => {
    const d = dir();
    writeFileSync(join(d, 'private.key'), 'garbage\n');
    expect(() => loadOrCreatePrivateKey(undefined, d)).toThrow(/private\.key: key must be 44 characters.*delete it to generate a new key/);
    expect(readFileSync(join(d, 'private.key'), 'utf8')).toBe('garbage\n');
  });
});
