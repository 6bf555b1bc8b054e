/**
 * Run synchronous code inside a named network namespace.
 *
 * Contract: `fn` must be synchronous. Sockets and devices it creates (netlink
 * sockets, TAP devices, UDP sockets opened through the addon) stay in the
 * namespace after the call returns; anything after an `await` would run back in
 * the original namespace, so a Promise result is refused.
 */
import { closeSync, readdirSync } from 'node:fs';
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

/** Create a named network namespace (as `ip netns add NAME`), loopback up is left to the caller. */
export function createNetns(name: string): void {
  native().createNetns(name);
}

/** Delete a named network namespace; false when there was none. */
export function deleteNetns(name: string): boolean {
  return native().deleteNetns(name);
}

/**
 * Move the calling (main) thread into the named namespace for good: for a
 * process that lives in one namespace (an appliance started with --netns).
 * Call it first, before any socket or worker thread is created.
 */
export function enterNetnsForGood(name: string): void {
  const prev = native().enterNetns(netnsPath(name));
  closeSync(prev);
}

/** Names of the named network namespaces (entries of /run/netns). */
export function listNetns(): string[] {
  try {
    return readdirSync('/run/netns');
  } catch {
    return [];
  }
}
