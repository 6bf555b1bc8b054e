/**
 * The appliance's static key: from the config, or from
 * `<state-dir>/private.key`, generated on first start and never regenerated
 * (a new key would break the pairing with the peer appliance).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeKey, encodeKey, generatePrivateKey } from '../dataplane/wg/crypto.js';
import { writeFileAtomic } from '../shared/atomic-file.js';
import { NeaError, ValidationError } from '../shared/errors.js';

export const PRIVATE_KEY_FILE = 'private.key';

export interface LoadedKey {
  privateKey: Uint8Array;
  /** Where the key came from. */
  source: 'config' | 'state-dir' | 'generated';
}

export function loadOrCreatePrivateKey(configKey: string | undefined, stateDir: string): LoadedKey {
  if (configKey !== undefined) return { privateKey: decodeKey(configKey), source: 'config' };
  const file = join(stateDir, PRIVATE_KEY_FILE);
  if (existsSync(file)) {
    const text = readFileSync(file, 'utf8').trim();
    try {
      return { privateKey: decodeKey(text), source: 'state-dir' };
    } catch (e) {
      // Never replace a damaged key silently: the operator decides.
      throw new ValidationError(`${file}: ${(e as Error).message}; restore it from a backup, or delete it to generate a new key (peers must then be re-paired)`, { cause: e });
    }
  }
  const key = generatePrivateKey();
  try {
    writeFileAtomic(file, encodeKey(key) + '\n', 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new NeaError('STATE_WRITE_FAILED', `cannot write ${file} (${code}): run as root or choose a writable --state-dir`, { cause: e });
  }
  return { privateKey: key, source: 'generated' };
}
