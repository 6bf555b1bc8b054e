/**
 * One lifecycle for every long-lived part: start in order, stop in reverse.
 * If a start fails, the parts already started are stopped (reverse order)
 * before the error is rethrown, so a failed start leaves nothing running.
 */
export interface Startable {
  /** Name used in logs and errors. */
  readonly name: string;
  start(): Promise<void> | void;
  stop(): Promise<void> | void;
}

export class Lifecycle {
  private readonly parts: Startable[] = [];
  private readonly started: Startable[] = [];

  add(part: Startable): this {
    this.parts.push(part);
    return this;
  }

  async start(): Promise<void> {
    for (const p of this.parts) {
      try {
        await p.start();
      } catch (e) {
        await this.stop();
        throw e;
      }
      this.started.push(p);
    }
  }

  /** Stops started parts in reverse order; every part is stopped even if one fails; the first error is rethrown. */
  async stop(): Promise<void> {
    let first: Error | undefined;
    while (this.started.length > 0) {
      const p = this.started.pop()!;
      try {
        await p.stop();
      } catch (e) {
        first ??= e instanceof Error ? e : new Error(String(e));
      }
    }
    if (first) throw first;
  }
}
