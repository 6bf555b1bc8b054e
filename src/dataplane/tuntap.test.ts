/**
 * The pure parts of the TAP/TUN wrapper: how the addon's errno errors map to
 * stable codes. The devices themselves are tested on a real kernel in
 * netns-tests/tuntap.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { SystemError } from '../shared/errors.js';
import { DeviceWriteError, openTap, openTun, tunErrorCode, toTunError } from './tuntap.js';

/** An error shaped like the addon's (common.h ErrnoError). */
function nativeError(code: string, syscall: string, message = `x: y (${code})`, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(message), { code, errno: 1, syscall }, extra);
}

describe('tunErrorCode', () => {
  it.each([
    ['open', 'ENOENT', 'open', 'TUN_NO_DEVICE'],
    ['open', 'ENODEV', 'open', 'TUN_NO_DEVICE'],
    ['open', 'ENXIO', 'open', 'TUN_NO_DEVICE'],
    ['open', 'EACCES', 'open', 'TUN_NO_PERMISSION'],
    ['open', 'EPERM', 'TUNSETIFF', 'TUN_NO_PERMISSION'],
    ['open', 'EBUSY', 'TUNSETIFF', 'TUN_BUSY'],
    ['open', 'EINVAL', 'TUNSETIFF', 'TUN_BUSY'],
    ['open', 'ENAMETOOLONG', 'TUNSETIFF', 'TUN_NAME_INVALID'],
    ['open', 'EMFILE', 'open', 'TUN_OPEN_FAILED'],
    ['open', 'ENOMEM', 'uv_poll_init', 'TUN_OPEN_FAILED'],
    ['write', 'EIO', 'write', 'TUN_LINK_DOWN'],
    ['write', 'EINVAL', 'write', 'TUN_WRITE_FAILED'],
    ['write', 'EBADF', 'write', 'TUN_CLOSED'],
    ['read', 'EBADFD', 'read', 'TUN_READ_FAILED'],
    ['read', 'EBADF', 'poll', 'TUN_READ_FAILED'],
  ] as const)('%s %s (%s) -> %s', (op, errno, syscall, code) => {
    expect(tunErrorCode(op, errno, syscall)).toBe(code);
  });
});

describe('toTunError', () => {
  it('keeps the addon message and errno, sets the code', () => {
    const msg = "cannot open TAP 'x': Device or resource busy (EBUSY); interface name x is already in use by an open TAP (not multi-queue): close it or pick another name";
    const e = toTunError('open', nativeError('EBUSY', 'TUNSETIFF', msg));
    expect(e).toBeInstanceOf(SystemError);
    expect(e).toMatchObject({ code: 'TUN_BUSY', errno: 'EBUSY', syscall: 'TUNSETIFF', message: msg, name: 'SystemError' });
  });

  it('gives write errors the number of frames written before the failure', () => {
    const e = toTunError('write', nativeError('EIO', 'write', 'w', { written: 7 }));
    expect(e).toBeInstanceOf(DeviceWriteError);
    expect(e).toMatchObject({ code: 'TUN_LINK_DOWN', written: 7 });
    expect(toTunError('write', nativeError('EINVAL', 'write'))).toMatchObject({ written: 0 });
  });

  it('returns other errors unchanged', () => {
    const t = new TypeError('buf must be a Uint8Array or Buffer');
    expect(toTunError('write', t)).toBe(t);
  });
});

describe('openTap / openTun argument checks', () => {
  it('refuses an invalid name before touching the kernel', () => {
    expect(() => openTap('0123456789abcdef')).toThrow(expect.objectContaining({ code: 'TUN_NAME_INVALID' }) as Error);
    expect(() => openTun('')).toThrow(expect.objectContaining({ code: 'TUN_NAME_INVALID' }) as Error);
  });
});
