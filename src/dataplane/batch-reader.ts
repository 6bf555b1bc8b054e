/**
 * The reading half that every native batch source shares (a TAP/TUN queue,
 * a UDP socket, a packet socket): the state machine, the batch and error
 * handlers, and the one place the addon's poll is started or stopped.
 *
 * States: idle (no handler) → reading ⇄ paused; a read error moves reading
 * to failed for good; close() ends every state in closed. The addon's
 * object starts paused; reading starts with the first handler.
 */
import type { SystemError } from '../shared/errors.js';
import { COUNTER } from '../native/index.js';
import type { DeviceState } from './packet-device.js';

/** The part of an addon batch source this class drives (src/native/batch_source.h). */
export interface NativeBatchSource {
  pause(): void;
  resume(): void;
  close(): void;
  /** Running counters, indexed by COUNTER, updated by the addon in place. */
  readonly counters: Float64Array;
}

/** The seven counters of a batch source, named as the addon keeps them. */
export interface NativeCounters {
  rxFrames: number;
  rxBytes: number;
  rxBatches: number;
  rxDrops: number;
  txFrames: number;
  txBytes: number;
  txDrops: number;
}

export abstract class BatchReader<B extends { count: number }> {
  private handler: ((batch: B) => void) | undefined;
  private errorHandler: ((err: SystemError) => void) | undefined;
  private current: DeviceState = 'idle';
  /** Set by the subclass once the addon object exists ({@link attach}). */
  private source!: NativeBatchSource;
  private batch!: B;

  /** Wires the addon object and the reusable batch view; call once from the subclass constructor. */
  protected attach(source: NativeBatchSource, batch: B): void {
    this.source = source;
    this.batch = batch;
  }

  /** The error that stopped reading, mapped to a SystemError with this source's codes. */
  protected abstract readError(err: Error): SystemError;
  /** The error every call but close() and counters() throws once closed. */
  protected abstract closedError(what: string): SystemError;

  get state(): DeviceState {
    return this.current;
  }

  /** Set the batch handler (replacing any earlier one); starts reading unless paused. */
  onBatch(handler: (batch: B) => void): void {
    this.assertOpen('onBatch');
    this.handler = handler;
    if (this.current === 'idle') this.transition('reading');
  }

  /** Set the handler for the error that stops reading; without one it is thrown from the event loop. */
  onError(handler: (err: SystemError) => void): void {
    this.errorHandler = handler;
  }

  pause(): void {
    this.assertOpen('pause');
    if (this.current === 'reading' || this.current === 'idle') this.transition('paused');
  }

  resume(): void {
    this.assertOpen('resume');
    if (this.current === 'paused') this.transition(this.handler ? 'reading' : 'idle');
  }

  close(): void {
    if (this.current !== 'closed') this.transition('closed');
  }

  /** A snapshot of the addon's counters. */
  protected nativeCounters(): NativeCounters {
    const c = this.source.counters;
    return {
      rxFrames: c[COUNTER.rxFrames]!, rxBytes: c[COUNTER.rxBytes]!, rxBatches: c[COUNTER.rxBatches]!,
      rxDrops: c[COUNTER.rxDrops]!, txFrames: c[COUNTER.txFrames]!, txBytes: c[COUNTER.txBytes]!,
      txDrops: c[COUNTER.txDrops]!,
    };
  }

  /** Hot path: the addon calls this once per batch. */
  protected deliver(count: number): void {
    this.batch.count = count;
    this.handler!(this.batch);
  }

  /** The addon calls this when a read fails for good. */
  protected failed(err: Error): void {
    if (this.current === 'reading') this.current = 'failed';
    const e = this.readError(err);
    if (this.errorHandler) this.errorHandler(e);
    else throw e;
  }

  protected assertOpen(what: string): void {
    if (this.current === 'closed') throw this.closedError(what);
  }

  /** The one place the native poll is started or stopped. */
  private transition(to: DeviceState): void {
    const from = this.current;
    this.current = to;
    if (to === 'reading') this.source.resume();
    else if (from === 'reading' && (to === 'paused' || to === 'idle')) this.source.pause();
    else if (to === 'closed') this.source.close();
  }
}
