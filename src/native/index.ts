/**
 * Loader and typed surface of the native addon (`build/Release/nea_native.node`,
 * built by node-gyp during `npm ci` from the C++ sources beside this file).
 *
 * Every function here is synchronous and throws errors with `code` set to the
 * errno name (`EBUSY`, `EPERM`, ...), `errno` and `syscall`.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { NeaError } from '../shared/errors.js';

/** The raw exports of the addon. Extended by each native source file. */
export interface NativeBinding {
  /** Switch the calling thread into the netns at `path`; returns an fd of the previous one. */
  enterNetns(path: string): number;
  /** Switch back to the netns `fd` refers to, and close `fd`. */
  leaveNetns(fd: number): void;
}

const addonPath = fileURLToPath(new URL('../../build/Release/nea_native.node', import.meta.url));

let cached: NativeBinding | undefined;

/** Loads the addon once; a missing build gives a one-line error saying how to build it. */
export function native(): NativeBinding {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  try {
    cached = require(addonPath) as NativeBinding;
  } catch (e) {
    throw new NeaError('NATIVE_MISSING',
      `native addon not found at ${addonPath}: run \`npm ci\` (or \`npm run build\`) in the repository first`, { cause: e });
  }
  return cached;
}
