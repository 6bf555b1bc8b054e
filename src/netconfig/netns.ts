/**
 * Run synchronous code inside a named network namespace.
 *
 * Contract: `fn` must be synchronous. Sockets and devices it creates (netlink
 * sockets, TAP devices, UDP sockets opened through the addon) stay in the
 * namespace after the call returns; anything after an `await` would run back in
 * the original namespace, so a Promise result is refused.
 */
import { native } from '../native/index.js';
import { NeaError } from '../shared/errors.js';

/** Path of a namespace created by `ip netns add NAME`. */
export function netnsPath(name: string): string {
  return `/run/netns/${name}`;
}

export function withNetns<T>(name: string | undefined, fn: () => T): T {
  if (name === undefined) return fn();
  const addon = native();
  const prev = addon.enterNetns(netnsPath(name));
  let result: T;
  try {
    result = fn();
  } finally {
    addon.leaveNetns(prev);
  }
  if (result instanceof Promise) {
    throw new NeaError('NETNS_ASYNC', 'withNetns(): the callback must be synchronous (it returned a Promise)');
  }
  return result;
}
