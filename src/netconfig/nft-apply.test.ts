/**
 * The applier against a fake `nft` (no kernel): what it runs, when it skips,
 * how failures surface; and the pure parsers of nft's output.
 */
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../shared/errors.js';
import { createLogger } from '../shared/log.js';
import {
  NftApplier, NftApplyError, NftMissingError, NftReadError, parseCounters, parseTableTag, rulesetDigest, spawnNft,
  type NftResult, type NftRunner,
} from './nft-apply.js';
import type { DesiredFirewall } from './nft-desired.js';
import { renderRuleset } from './nft-render.js';

const STATE: DesiredFirewall = {
  appliance: 't1',
  appliancePorts: { managementTcp: 8443, tunnelUdp: 51820 },
  segments: [{ name: 'prod', bridge: 'br0', ports: ['tap0'], mode: 'extend', mss: { ipv4: 1380, ipv6: 1360 } }],
};

/**
 * A fake nft holding the tag of each table of one appliance: `-f -` with a
 * script sets the tags it declares (or fails when told to), `list table`
 * prints a listing with the tag.
 */
class FakeNft {
  readonly calls: { args: string[]; input: string | undefined }[] = [];
  tags = new Map<string, string>();
  failApply: string | undefined;
  json: Record<string, string> = {};

  readonly runner: NftRunner = (args, input) => {
    this.calls.push({ args: [...args], input });
    return Promise.resolve(this.handle([...args], input));
  };

  private handle(args: string[], input: string | undefined): NftResult {
    if (args[0] === '-c') return this.failApply !== undefined ? { code: 1, stdout: '', stderr: this.failApply } : { code: 0, stdout: '', stderr: '' };
    if (args[0] === '-f') {
      if (this.failApply !== undefined) return { code: 1, stdout: '', stderr: this.failApply };
      const script = input ?? '';
      this.tags.clear();
      for (const m of script.matchAll(/^table (bridge|inet) (\S+) \{\n\tcomment "nea:([0-9a-f]+)"$/gm)) this.tags.set(`${m[1]!} ${m[2]!}`, m[3]!);
      for (const m of script.matchAll(/^table (bridge|inet) (\S+) \{\n\t(?!comment)/gm)) this.tags.set(`${m[1]!} ${m[2]!}`, '');
      return { code: 0, stdout: '', stderr: '' };
    }
    if (args[0] === 'list' || args[0] === '-j') {
      const [family, table] = args.slice(-2);
      const key = `${family!} ${table!}`;
      if (args[0] === '-j') {
        const j = this.json[key];
        return j === undefined ? { code: 1, stdout: '', stderr: 'Error: No such file or directory\nlist table x\n^^^^^\n' } : { code: 0, stdout: j, stderr: '' };
      }
      const tag = this.tags.get(key);
      if (tag === undefined) return { code: 1, stdout: '', stderr: 'Error: No such file or directory' };
      return { code: 0, stdout: `table ${key} {\n${tag ? `\tcomment "nea:${tag}"\n` : ''}\tchain forward {\n\t}\n}\n`, stderr: '' };
    }
    return { code: 2, stdout: '', stderr: `unexpected ${args.join(' ')}` };
  }
}

describe('NftApplier with a fake nft', () => {
  it('applies the rendered script, tagged with its digest, through nft -f -', async () => {
    const nft = new FakeNft();
    const a = new NftApplier('t1', { runner: nft.runner });
    const r = await a.apply(STATE);
    const digest = rulesetDigest(renderRuleset(STATE));
    expect(r).toEqual({ changed: true, digest });
    const applied = nft.calls.find((c) => c.args[0] === '-f')!;
    expect(applied.args).toEqual(['-f', '-']);
    expect(applied.input).toBe(renderRuleset(STATE, { tag: digest }));
  });

  it('does nothing when both tables already carry the digest; force applies anyway', async () => {
    const nft = new FakeNft();
    const a = new NftApplier('t1', { runner: nft.runner });
    await a.apply(STATE);
    nft.calls.length = 0;
    expect((await a.apply(STATE)).changed).toBe(false);
    expect(nft.calls.map((c) => c.args.join(' '))).toEqual(['list table bridge nea_t1', 'list table inet nea_t1']);
    expect((await a.apply(STATE, { force: true })).changed).toBe(true);
  });

  it('applies again when one table is missing, untagged or differently tagged', async () => {
    const nft = new FakeNft();
    const a = new NftApplier('t1', { runner: nft.runner });
    await a.apply(STATE);
    nft.tags.delete('inet nea_t1');
    expect((await a.apply(STATE)).changed).toBe(true);
    nft.tags.set('inet nea_t1', '');
    expect((await a.apply(STATE)).changed).toBe(true);
    nft.tags.set('bridge nea_t1', 'abc');
    expect((await a.apply(STATE)).changed).toBe(true);
    expect((await a.apply(STATE)).changed).toBe(false);
  });

  it('applies a changed state', async () => {
    const nft = new FakeNft();
    const a = new NftApplier('t1', { runner: nft.runner });
    const first = await a.apply(STATE);
    const second = await a.apply({ ...STATE, segments: [{ ...STATE.segments[0]!, mss: { ipv4: 1300, ipv6: 1280 } }] });
    expect(second.changed).toBe(true);
    expect(second.digest).not.toBe(first.digest);
  });

  it('reports nft\'s reason in one line with code NFT_APPLY_FAILED, and logs it', async () => {
    const nft = new FakeNft();
    const lines: string[] = [];
    const a = new NftApplier('t1', { runner: nft.runner, log: createLogger({ sink: (l) => lines.push(l) }) });
    nft.failApply = '/dev/stdin:9:3-14: Error: Could not process rule: Operation not supported\n\t\tmeta ibrname "br0"\n\t\t^^^^^^^^^^^^\n';
    const err = await a.apply(STATE).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NftApplyError);
    expect((err as NftApplyError).code).toBe('NFT_APPLY_FAILED');
    expect((err as NftApplyError).message).toBe(
      'nft refused the ruleset of nea_t1, previous ruleset kept: /dev/stdin:9:3-14: Error: Could not process rule: Operation not supported | meta ibrname "br0"',
    );
    expect((err as NftApplyError).stderr).toBe(nft.failApply);
    expect(lines.some((l) => l.includes('nft ruleset refused'))).toBe(true);
  });

  it('check runs nft -c -f - with the tagged script, changes nothing, and reports a refusal', async () => {
    const nft = new FakeNft();
    const a = new NftApplier('t1', { runner: nft.runner });
    await a.check(STATE);
    expect(nft.calls).toEqual([{ args: ['-c', '-f', '-'], input: renderRuleset(STATE, { tag: rulesetDigest(renderRuleset(STATE)) }) }]);
    expect(nft.tags.size).toBe(0);
    nft.failApply = 'Error: syntax error\n';
    await expect(a.check(STATE)).rejects.toThrow('nft refused the ruleset check of nea_t1, previous ruleset kept: Error: syntax error');
    await expect(a.check({ ...STATE, appliance: 't2' })).rejects.toThrow(ValidationError);
  });

  it('refuses a state of another appliance and an invalid state before running nft', async () => {
    const nft = new FakeNft();
    const a = new NftApplier('t1', { runner: nft.runner });
    await expect(a.apply({ ...STATE, appliance: 't2' })).rejects.toThrow(/for appliance "t2", this applier manages "t1"/);
    await expect(a.apply({ ...STATE, segments: [{ ...STATE.segments[0]!, ports: [] }] })).rejects.toThrow(ValidationError);
    expect(nft.calls).toEqual([]);
  });

  it('refuses a bad appliance id at construction', () => {
    expect(() => new NftApplier('Bad-Id')).toThrow(ValidationError);
  });

  it('remove runs the removal script; an nft failure is an NftApplyError', async () => {
    const nft = new FakeNft();
    const a = new NftApplier('t1', { runner: nft.runner });
    await a.remove();
    expect(nft.calls).toEqual([{ args: ['-f', '-'], input: 'table bridge nea_t1 {}\ndelete table bridge nea_t1\ntable inet nea_t1 {}\ndelete table inet nea_t1\n' }]);
    nft.failApply = 'Error: Operation not permitted';
    await expect(a.remove()).rejects.toThrow(/nft refused the removal of nea_t1.*Operation not permitted/);
  });

  it('readCounters merges both tables; a missing table is an NftReadError', async () => {
    const nft = new FakeNft();
    const a = new NftApplier('t1', { runner: nft.runner });
    await expect(a.readCounters()).rejects.toThrow(NftReadError);
    await expect(a.readCounters()).rejects.toThrow(/cannot list table bridge nea_t1: Error: No such file or directory \| list table x/);
    nft.json['bridge nea_t1'] = JSON_BRIDGE;
    nft.json['inet nea_t1'] = '{"nftables": [{"rule": {"family": "inet", "table": "nea_t1", "chain": "forward", "handle": 2, "comment": "not-ours", "expr": [{"counter": {"packets": 1, "bytes": 2}}, {"accept": null}]}}]}';
    const c = await a.readCounters();
    expect([...c.keys()]).toEqual(['mss-prod-v4', 'not-ours']);
    nft.json['inet nea_t1'] = 'not json';
    await expect(a.readCounters()).rejects.toThrow(/cannot parse nft's JSON listing of nea_t1/);
  });
});

const JSON_BRIDGE = `{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
{"table": {"family": "bridge", "name": "nea_t1", "handle": 5}},
{"chain": {"family": "bridge", "table": "nea_t1", "name": "forward", "handle": 1, "type": "filter", "hook": "forward", "prio": -200, "policy": "accept"}},
{"rule": {"family": "bridge", "table": "nea_t1", "chain": "forward", "handle": 3, "comment": "mss-prod-v4", "expr": [
  {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "tap0"}},
  {"counter": {"packets": 18446744073709551615, "bytes": 9007199254740993}},
  {"mangle": {"key": {"tcp option": {"name": "maxseg", "field": "size"}}, "value": 1380}}]}},
{"rule": {"family": "bridge", "table": "nea_t1", "chain": "forward", "handle": 4, "expr": [{"counter": {"packets": 5, "bytes": 6}}]}},
{"rule": {"family": "bridge", "table": "other", "chain": "forward", "handle": 4, "comment": "x", "expr": [{"counter": {"packets": 5, "bytes": 6}}]}},
{"rule": {"family": "bridge", "table": "nea_t1", "chain": "forward", "handle": 5, "comment": "no-counter", "expr": [{"accept": null}]}}
]}`;

describe('parseCounters', () => {
  it('reads named rules of the table, exact beyond 2^53; skips unnamed, other tables, counterless', () => {
    expect([...parseCounters('nea_t1', JSON_BRIDGE)]).toEqual([
      ['mss-prod-v4', { family: 'bridge', chain: 'forward', packets: 18446744073709551615n, bytes: 9007199254740993n }],
    ]);
  });
  it('is empty for a listing without rules', () => {
    expect(parseCounters('nea_t1', '{"nftables": []}').size).toBe(0);
  });
});

describe('parseTableTag', () => {
  it('finds the table comment, not a rule comment', () => {
    expect(parseTableTag('table inet nea_t1 {\n\tcomment "nea:00ff"\n\tchain forward {\n')).toBe('00ff');
    expect(parseTableTag('table inet nea_t1 {\n\tchain forward {\n\t\tcounter accept comment "nea:00ff"\n')).toBeUndefined();
  });
});

describe('spawnNft', () => {
  it('reports a missing nft executable as NFT_MISSING', async () => {
    const run = spawnNft({ nftPath: '/nonexistent/nft' });
    const err = await run(['--version']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NftMissingError);
    expect((err as NftMissingError).message).toMatch(/cannot run \/nonexistent\/nft .*install nftables/);
  });

  it('reports a namespace that does not exist as the namespace error, not as a missing nft', async () => {
    const run = spawnNft({ netns: 'nea-no-such-netns-for-test' });
    await expect(run(['--version'])).rejects.toThrow(/nea-no-such-netns-for-test|ENOENT|native addon/);
    await expect(run(['--version'])).rejects.not.toBeInstanceOf(NftMissingError);
  });

  it('passes stdin and returns exit code and output (checked with a stand-in executable)', async () => {
    const run = spawnNft({ nftPath: '/bin/sh' });
    const r = await run(['-c', 'cat; echo err >&2; exit 3'], 'script text');
    expect(r).toEqual({ code: 3, stdout: 'script text', stderr: 'err\n' });
  });

  it('kills a hung nft after timeoutMs', async () => {
    const run = spawnNft({ nftPath: '/bin/sh', timeoutMs: 100 });
    const r = await run(['-c', 'exec sleep 30']);
    expect(r.code).toBe(-1);
    expect(r.stderr).toMatch(/killed after 100 ms/);
  });
});
