import type { ErrorCode } from './error-codes.js';

/**
 * One error class per failure, matchable by `name` and by `code`.
 *
 * `NeaError.code` is a stable identifier from the registry in
 * src/shared/error-codes.ts, documented in docs/errors.md;
 * `message` is one line that says what failed and what to do about it.
 */
export class NeaError extends Error {
  /** Stable machine-readable code, e.g. `TUN_BUSY` (src/shared/error-codes.ts). */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** An OS call failed; `errno` is the symbolic name (`EBUSY`, `EPERM`, ...). */
export class SystemError extends NeaError {
  readonly errno: string;
  readonly syscall: string;

  constructor(code: ErrorCode, errno: string, syscall: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.errno = errno;
    this.syscall = syscall;
  }
}

/** Input (config file, API body, argument) was refused; nothing was changed. */
export class ValidationError extends NeaError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INVALID_INPUT', message, options);
  }
}

/** Shape of the errors the native addon throws. */
export interface NativeErrnoError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

export function isNativeErrnoError(e: unknown): e is NativeErrnoError {
  return e instanceof Error && typeof (e as Partial<NativeErrnoError>).code === 'string' &&
    typeof (e as Partial<NativeErrnoError>).syscall === 'string';
}
