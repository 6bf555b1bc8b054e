/**
 * The effectful half of the nftables layer: run `nft` to apply an
 * appliance's rendered ruleset, read its counters and remove it.
 *
 * Contracts:
 * - Atomic: the whole script goes to one `nft -f -`, which the kernel commits
 *   as one transaction. A refused script (syntax, or a rule the kernel
 *   rejects) changes nothing: the previous ruleset stays in place, and
 *   {@link NftApplyError} carries nft's own reason.
 * - Idempotent: both tables carry the digest of the script that made them
 *   (table comment `nea:<sha256>`). `apply` with a state whose script has
 *   that digest changes nothing (and so keeps the counters); `force` applies
 *   anyway. Replacing the tables resets their counters to zero.
 * - Namespace: `nft` runs in the process's current network namespace, or in
 *   `netns`: it is spawned from inside `withNetns`, and a child process
 *   starts in the namespace of the thread that forks it.
 * - Only `nft` is ever executed. Every call spawns one short-lived process
 *   (a few ms); calls are not serialized, so one applier per appliance.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { NeaError, ValidationError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { tableName, type DesiredFirewall } from './nft-desired.js';
import { renderRemoval, renderRuleset } from './nft-render.js';
import { withNetns } from './netns.js';

/** Exit status and output of one `nft` run. */
export interface NftResult {
  /** Exit code; -1 when it was killed (timeout). */
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `nft ARGS` with `input` on stdin. The seam tests replace (a fake, or a wrapper that injects faults). */
export type NftRunner = (args: readonly string[], input?: string) => Promise<NftResult>;

/** `nft` could not be started (not installed, not executable). */
export class NftMissingError extends NeaError {
  constructor(readonly path: string, cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super('NFT_MISSING', `cannot run ${path} (${why}): install nftables (the nft command)`, { cause });
  }
}

/** `nft -f` refused the ruleset; nothing was changed. `stderr` is nft's full report. */
export class NftApplyError extends NeaError {
  constructor(readonly table: string, readonly stderr: string, what = 'ruleset') {
    super('NFT_APPLY_FAILED', `nft refused the ${what} of ${table}, previous ruleset kept: ${oneLine(stderr)}`);
  }
}

/** Listing the appliance's tables failed (absent, or nft failed). */
export class NftReadError extends NeaError {
  constructor(readonly table: string, message: string) {
    super('NFT_READ_FAILED', message);
  }
}

/** nft's report on one line: its error lines joined, the source-caret lines dropped. */
function oneLine(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !/^[\s^~]+$/.test(l));
  return lines.join(' | ') || 'no message';
}

export interface SpawnNftOptions {
  /** Named network namespace to run nft in; absent: the process's current one. */
  netns?: string;
  /** The nft executable; default `nft` (found on PATH). */
  nftPath?: string;
  /** Kill nft (SIGKILL, by pid) after this many ms; default 10000. */
  timeoutMs?: number;
}

/** The real runner: spawns nft (inside `netns` when given). */
export function spawnNft(opts: SpawnNftOptions = {}): NftRunner {
  const path = opts.nftPath ?? 'nft';
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return (args, input) => new Promise<NftResult>((resolve, reject) => {
    let child: ChildProcess;
    try {
      // The fork happens inside spawn(), synchronously, on this thread: the
      // child starts in the thread's namespace at that moment.
      child = withNetns(opts.netns, () => spawn(path, [...args], { stdio: ['pipe', 'pipe', 'pipe'] }));
    } catch (e) {
      // Entering the namespace failed (no such namespace, addon missing); a missing nft arrives as 'error' below.
      reject(e instanceof Error ? e : new Error(String(e)));
      return;
    }
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) { try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ } }
    }, timeoutMs);
    child.stdout?.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new NftMissingError(path, e));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (timedOut) stderr += `\nnft killed after ${timeoutMs} ms`;
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin?.on('error', () => { /* nft exited before reading all input: its exit status reports why */ });
    child.stdin?.end(input ?? '');
  });
}

/** Packets and bytes of one named rule. */
export interface RuleCounter {
  family: 'bridge' | 'inet';
  chain: string;
  packets: bigint;
  bytes: bigint;
}

interface NftJsonRule {
  rule?: {
    family: string;
    table: string;
    chain: string;
    comment?: string;
    expr?: { counter?: { packets: string; bytes: string } }[];
  };
}

/**
 * Counters of the named rules of `table` in the output of `nft -j list table
 * ...` (one or more outputs). Pure. Counter values are read as bigints, exact
 * beyond 2^53.
 */
export function parseCounters(table: string, ...outputs: string[]): Map<string, RuleCounter> {
  const out = new Map<string, RuleCounter>();
  for (const text of outputs) {
    // Keep 64-bit counters exact: quote them before JSON.parse turns them into doubles.
    const quoted = text.replace(/"(packets|bytes)":\s*(\d+)/g, '"$1": "$2"');
    const doc = JSON.parse(quoted) as { nftables?: NftJsonRule[] };
    for (const item of doc.nftables ?? []) {
      const r = item.rule;
      if (!r || r.table !== table || r.comment === undefined) continue;
      if (r.family !== 'bridge' && r.family !== 'inet') continue;
      const c = r.expr?.find((e) => e.counter !== undefined)?.counter;
      if (!c) continue;
      out.set(r.comment, { family: r.family, chain: r.chain, packets: BigInt(c.packets), bytes: BigInt(c.bytes) });
    }
  }
  return out;
}

/** The `nea:<hex>` table comment in `nft list table` text, if any. */
export function parseTableTag(listing: string): string | undefined {
  return /^\tcomment "nea:([0-9a-f]+)"$/m.exec(listing)?.[1];
}

/** sha256 (hex) of a rendered script. */
export function rulesetDigest(script: string): string {
  return createHash('sha256').update(script).digest('hex');
}

export interface NftApplierOptions {
  /** Named network namespace nft runs in; absent: the process's own. Ignored when `runner` is given. */
  netns?: string;
  /** How nft is run; default {@link spawnNft}. */
  runner?: NftRunner;
  /** Applies at info (`nft ruleset applied`), failures at error. */
  log?: Logger;
}

export interface ApplyOptions {
  /** Replace the tables even when they carry this state's digest. Default false. */
  force?: boolean;
}

export interface ApplyResult {
  /** False when the installed tables already were this state's (nothing done). */
  changed: boolean;
  /** sha256 of the rendered script, stored as the tables' comment. */
  digest: string;
}

/** Applies, reads back and removes the nftables tables of one appliance. */
export class NftApplier {
  /** `nea_<id>`, the name of both tables. */
  readonly table: string;
  private readonly run: NftRunner;
  private readonly log: Logger | undefined;

  constructor(readonly applianceId: string, opts: NftApplierOptions = {}) {
    this.table = tableName(applianceId);
    this.run = opts.runner ?? spawnNft(opts.netns === undefined ? {} : { netns: opts.netns });
    this.log = opts.log;
  }

  /**
   * Make the appliance's tables exactly `desired`'s ruleset, atomically.
   * Throws ValidationError (nothing applied) on an invalid state and
   * NftApplyError when nft refuses the script (previous ruleset kept).
   */
  async apply(desired: DesiredFirewall, opts: ApplyOptions = {}): Promise<ApplyResult> {
    if (desired.appliance !== this.applianceId) {
      throw new ValidationError(`desired firewall is for appliance "${desired.appliance}", this applier manages "${this.applianceId}"`);
    }
    const digest = rulesetDigest(renderRuleset(desired));
    if (!opts.force && (await this.installedTag()) === digest) {
      this.log?.debug('nft ruleset unchanged', { table: this.table, digest: digest.slice(0, 12) });
      return { changed: false, digest };
    }
    const script = renderRuleset(desired, { tag: digest });
    const r = await this.run(['-f', '-'], script);
    if (r.code !== 0) {
      const err = new NftApplyError(this.table, r.stderr);
      this.log?.error('nft ruleset refused', { table: this.table, error: err.message });
      throw err;
    }
    this.log?.info('nft ruleset applied', { table: this.table, digest: digest.slice(0, 12) });
    return { changed: true, digest };
  }

  /**
   * Ask the kernel whether it would take `desired`'s ruleset, changing
   * nothing (`nft -c -f -`: nft builds the whole batch and the kernel
   * validates it, then it is aborted). Throws ValidationError on an invalid
   * state and NftApplyError (`ruleset check`) when nft refuses the script.
   */
  async check(desired: DesiredFirewall): Promise<void> {
    if (desired.appliance !== this.applianceId) {
      throw new ValidationError(`desired firewall is for appliance "${desired.appliance}", this applier manages "${this.applianceId}"`);
    }
    const script = renderRuleset(desired, { tag: rulesetDigest(renderRuleset(desired)) });
    const r = await this.run(['-c', '-f', '-'], script);
    if (r.code !== 0) throw new NftApplyError(this.table, r.stderr, 'ruleset check');
  }

  /**
   * The digest both tables carry, or undefined when either is missing, has
   * no tag, or the two differ (a state nea did not leave them in).
   */
  async installedTag(): Promise<string | undefined> {
    const tags: (string | undefined)[] = [];
    for (const family of ['bridge', 'inet'] as const) {
      const r = await this.run(['list', 'table', family, this.table]);
      tags.push(r.code === 0 ? parseTableTag(r.stdout) : undefined);
    }
    return tags[0] !== undefined && tags[0] === tags[1] ? tags[0] : undefined;
  }

  /** Packets and bytes of every named rule of both tables, by rule name. */
  async readCounters(): Promise<Map<string, RuleCounter>> {
    const outputs: string[] = [];
    for (const family of ['bridge', 'inet'] as const) {
      const r = await this.run(['-j', 'list', 'table', family, this.table]);
      if (r.code !== 0) throw new NftReadError(this.table, `cannot list table ${family} ${this.table}: ${oneLine(r.stderr)}`);
      outputs.push(r.stdout);
    }
    try {
      return parseCounters(this.table, ...outputs);
    } catch (e) {
      throw new NftReadError(this.table, `cannot parse nft's JSON listing of ${this.table}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** Delete both tables, in one transaction; a no-op when they are absent. */
  async remove(): Promise<void> {
    const r = await this.run(['-f', '-'], renderRemoval(this.table));
    if (r.code !== 0) throw new NftApplyError(this.table, r.stderr, 'removal');
    this.log?.info('nft tables removed', { table: this.table });
  }
}
