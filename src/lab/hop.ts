/**
 * Opening client sockets inside a network namespace from a process that
 * lives in another one.
 *
 * Node creates a TCP socket's file descriptor one tick after `connect()`
 * (and `tls.connect()`, `apiRequest()`) is called, and a socket belongs to
 * the namespace its thread was in when the descriptor was created.
 * {@link inNetns} moves the main thread into the namespace, starts `fn`,
 * lets the pending ticks run (the descriptors are now created there), and
 * moves back; `fn`'s promise then completes wherever. Hops are serialized
 * within the process.
 *
 * Contract: during a hop (one turn of the event loop) nothing else in the
 * process may create sockets it wants in its own namespace. The lab's
 * commands and the netns tests' helpers run their requests through here;
 * a process with unrelated concurrent traffic (a server) must not use it.
 */
import { native } from '../native/index.js';
import { netnsPath } from '../netconfig/netns.js';

let queue: Promise<unknown> = Promise.resolve();

/** Runs `fn` so that the sockets it opens synchronously or on the next tick live in namespace `ns`. */
export function inNetns<T>(ns: string, fn: () => Promise<T>): Promise<T> {
  const hop = queue.then(async () => {
    const addon = native();
    const prev = addon.enterNetns(netnsPath(ns));
    let p: Promise<T>;
    try {
      p = fn();
      // A connection refused fails before the caller awaits p: mark it handled here (the caller still sees it).
      p.catch(() => undefined);
      await new Promise((r) => setImmediate(r));
    } finally {
      addon.leaveNetns(prev);
    }
    return { p };
  });
  queue = hop.catch(() => undefined);
  return hop.then((h) => h.p);
}
