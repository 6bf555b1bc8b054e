/**
 * Step-by-step progress for long commands: each step prints a tick (or a
 * cross) with its duration, so a person sees what is happening and where it
 * stopped.
 */
export interface ProgressSink {
  write(text: string): void;
}

export class Progress {
  private readonly t0: number;

  constructor(private readonly out: ProgressSink = process.stdout, private readonly now: () => number = Date.now) {
    this.t0 = now();
  }

  /** Run `fn` as a named step; prints `✓ name (123 ms)` or `✗ name: why` and rethrows. */
  async step<T>(name: string, fn: () => T | Promise<T>): Promise<T> {
    const start = this.now();
    try {
      const v = await fn();
      this.out.write(`  \u2713 ${name} (${this.now() - start} ms)\n`);
      return v;
    } catch (e) {
      this.out.write(`  \u2717 ${name}: ${e instanceof Error ? e.message : String(e)}\n`);
      throw e;
    }
  }

  /** Milliseconds since this progress began. */
  elapsed(): number {
    return this.now() - this.t0;
  }
}
