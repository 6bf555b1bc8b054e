/**
 * What the tunnel engine needs from its UDP socket: batched receive with the
 * source of each datagram, batched send to one destination. The real
 * implementation adapts the addon's batched UDP socket; tests use an
 * in-memory one.
 */
import type { Endpoint } from '../wg/endpoint.js';

/** A received batch, viewed in place; valid only during the handler call. */
export interface DatagramBatch {
  readonly buffer: Buffer;
  readonly count: number;
  /** Byte offset of datagram i in `buffer`. */
  offset(i: number): number;
  /** Length of datagram i. */
  length(i: number): number;
  /**
   * Source of datagram i. Implementations return interned objects (the same
   * object for the same address and port), so the hot path allocates nothing
   * and the engine may keep the reference (as a peer's endpoint).
   */
  source(i: number): Endpoint;
  /**
   * How long the batch's first (oldest) datagram waited in the socket's
   * receive queue, in ms; -1 (or absent) when unknown. Drives the engine's
   * queue management (CoDel).
   */
  queueDelayMs?(): number;
}

export interface TunnelSocket {
  /** Local port the socket is bound to. */
  readonly port: number;
  onBatch(handler: (batch: DatagramBatch) => void): void;
  /** Sends one datagram; false when the kernel refused it (dropped, counted by the caller). */
  send(buf: Uint8Array, offset: number, length: number, dest: Endpoint): boolean;
  /**
   * Sends `count` datagrams (i at `buf[offsets[i], +lengths[i])`) to `dest`, in
   * order; returns how many the kernel took (the rest are the caller's to drop).
   */
  sendBatch(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, dest: Endpoint): number;
  close(): void;
}
