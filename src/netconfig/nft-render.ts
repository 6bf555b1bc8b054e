/**
 * The pure renderer: an appliance's desired firewall state → the complete
 * `nft -f` script that replaces the appliance's tables in one transaction.
 *
 * Layout (docs/nftables.md has a rendered example):
 *
 * ```
 * table bridge nea_<id>        forward (filter, policy accept)
 *   extend segments:   clamp TCP MSS on SYNs entering from a port (IPv4, IPv6)
 *   isolated segments: drop every frame entering from a port
 *   gateway segments:  drop every frame entering or leaving by a tunnel port
 *                      output (filter, policy accept), only when needed: drop the
 *                      appliance's own frames to a gateway segment's tunnel ports
 *                      and to an isolated segment's ports
 * table inet nea_<id>
 *   forward (filter, policy drop) — judges only packets in or out of the
 *     appliance's segment bridges, accepts the rest ("not-ours"), so several
 *     appliances share a namespace; then allows what modes and rules allow
 *   prerouting (nat, dstnat)  — public IP rules: DNAT
 *   postrouting (nat, srcnat) — whole-address SNAT, hairpin, segment SNAT (to
 *     the appliance's own address of the family, else masquerade)
 * ```
 *
 * Every rule carries a counter and a comment naming it; the names are
 * stable (derived from segment and rule names, see {@link ruleNames}) so
 * counters can be read back by name. The script starts by creating and
 * deleting both tables (an empty `table` declaration is a no-op when it
 * exists), so the same script installs or replaces, and `nft -f` applies the
 * whole file as one atomic transaction.
 */
import type { Family } from './ip.js';
import { normalizeFirewall, type DesiredFirewall, type NormFirewall, type NormRule, type NormSegment, type Prefix } from './nft-desired.js';

/** One rendered rule, named by its comment. */
export interface RenderedRule {
  /** Counter name: the rule's comment, unique within the appliance. */
  name: string;
  /** The rule's text, without the comment. */
  text: string;
}

export interface RenderedChain {
  family: 'bridge' | 'inet';
  chain: 'forward' | 'output' | 'prerouting' | 'postrouting';
  /** `type ... hook ... priority ...; policy ...;` */
  header: string;
  rules: RenderedRule[];
}

export interface RenderOptions {
  /**
   * Written as the comment of both tables (`comment "nea:<tag>"`); the
   * applier stores the script's digest there to recognise a ruleset it
   * already applied. Lowercase hex; absent: no table comment.
   */
  tag?: string;
}

const FAMILY_KW: Record<Family, 'ip' | 'ip6'> = { 4: 'ip', 6: 'ip6' };

function quote(s: string): string {
  return `"${s}"`;
}

/** `"a"` for one item, `{ "a", "b" }` for several (anonymous set). */
function oneOrSet(items: readonly string[]): string {
  return items.length === 1 ? items[0]! : `{ ${items.join(', ')} }`;
}

function names(links: readonly string[]): string {
  return oneOrSet(links.map(quote));
}

function prefixes(ps: readonly Prefix[]): string {
  return oneOrSet(ps.map((p) => p.cidr));
}

function families(seg: NormSegment): Family[] {
  return ([4, 6] as const).filter((f) => seg.subnets.some((p) => p.family === f));
}

function suffix(f: Family): string {
  return f === 4 ? 'v4' : 'v6';
}

function bridgeForward(n: NormFirewall): RenderedRule[] {
  const rules: RenderedRule[] = [];
  for (const s of n.segments) {
    if (s.mode === 'extend' && s.mss) {
      for (const f of [4, 6] as const) {
        const mss = f === 4 ? s.mss.ipv4 : s.mss.ipv6;
        rules.push({
          name: `mss-${s.name}-${suffix(f)}`,
          text: `iifname ${names(s.ports)} ether type ${FAMILY_KW[f]} tcp flags syn tcp option maxseg size > ${mss} counter tcp option maxseg size set ${mss}`,
        });
      }
    } else if (s.mode === 'isolated') {
      rules.push({ name: `isolated-${s.name}`, text: `iifname ${names(s.ports)} counter drop` });
    } else if (s.tunnelPorts.length > 0) {
      rules.push({ name: `cut-${s.name}-in`, text: `iifname ${names(s.tunnelPorts)} counter drop` });
      rules.push({ name: `cut-${s.name}-out`, text: `oifname ${names(s.tunnelPorts)} counter drop` });
    }
  }
  return rules;
}

/**
 * Frames the appliance itself sends into a bridge (ARP, IPv6 neighbour
 * discovery, routed packets) reach neither a cut tunnel port nor any port of
 * an isolated segment.
 */
function bridgeOutput(n: NormFirewall): RenderedRule[] {
  const rules: RenderedRule[] = [];
  for (const s of n.segments) {
    if (s.mode === 'gateway' && s.tunnelPorts.length > 0) rules.push({ name: `cut-${s.name}-local`, text: `oifname ${names(s.tunnelPorts)} counter drop` });
    if (s.mode === 'isolated') rules.push({ name: `isolated-${s.name}-local`, text: `oifname ${names(s.ports)} counter drop` });
  }
  return rules;
}

function ruleMatchTarget(r: NormRule): string {
  const kw = FAMILY_KW[r.family];
  const port = r.kind === 'port' ? ` ${r.protocol} dport ${r.targetPort}` : '';
  return `${kw} daddr ${r.target}${port}`;
}

function inetForward(n: NormFirewall, active: readonly NormRule[], seg: (name: string) => NormSegment): RenderedRule[] {
  const rules: RenderedRule[] = [];
  const bridges = n.segments.map((s) => s.bridge);
  rules.push({
    name: 'not-ours',
    text: bridges.length === 0 ? 'counter accept' : `iifname != ${names(bridges)} oifname != ${names(bridges)} counter accept`,
  });
  for (const s of n.segments) {
    if (s.mode === 'isolated') continue;
    rules.push({ name: `bridged-${s.name}`, text: `iifname ${quote(s.bridge)} oifname ${quote(s.bridge)} counter accept` });
  }
  rules.push({ name: 'invalid', text: 'ct state invalid counter drop' });
  const gateways = n.segments.filter((s) => s.mode === 'gateway');
  if (n.external) {
    for (const s of gateways) {
      if (!s.internet) continue;
      rules.push({ name: `internet-${s.name}`, text: `iifname ${quote(s.bridge)} oifname ${quote(n.external.name)} counter accept` });
    }
  }
  if (n.routeBetweenSegments && gateways.length >= 2) {
    const gw = names(gateways.map((s) => s.bridge));
    rules.push({ name: 'routed', text: `iifname ${gw} oifname ${gw} counter accept` });
  }
  for (const r of active) {
    const kw = FAMILY_KW[r.family];
    rules.push({
      name: `map-${r.name}`,
      text: `oifname ${quote(seg(r.segment).bridge)} ${ruleMatchTarget(r)} ct status dnat ct original ${kw} daddr ${r.publicAddress} counter accept`,
    });
  }
  rules.push({ name: 'replies', text: 'ct state established ct direction reply counter accept' });
  rules.push({ name: 'related', text: 'ct state related counter accept' });
  rules.push({ name: 'default-drop', text: 'counter drop' });
  return rules;
}

function inetPrerouting(active: readonly NormRule[]): RenderedRule[] {
  return active.map((r) => {
    const kw = FAMILY_KW[r.family];
    if (r.kind === 'port') {
      const to = r.family === 4 ? `${r.target}:${r.targetPort}` : `[${r.target}]:${r.targetPort}`;
      return { name: `dnat-${r.name}`, text: `${kw} daddr ${r.publicAddress} ${r.protocol} dport ${r.publicPort} counter dnat ${kw} to ${to}` };
    }
    return { name: `dnat-${r.name}`, text: `${kw} daddr ${r.publicAddress} counter dnat ${kw} to ${r.target}` };
  });
}

function inetPostrouting(n: NormFirewall, active: readonly NormRule[]): RenderedRule[] {
  const rules: RenderedRule[] = [];
  const ext = n.external;
  if (ext) {
    for (const r of active) {
      if (r.kind !== 'address') continue;
      const kw = FAMILY_KW[r.family];
      rules.push({ name: `snat-${r.name}`, text: `oifname ${quote(ext.name)} ${kw} saddr ${r.target} counter snat ${kw} to ${r.publicAddress}` });
    }
  }
  for (const s of n.segments) {
    if (s.mode !== 'gateway') continue;
    for (const f of families(s)) {
      if (!active.some((r) => r.segment === s.name && r.family === f)) continue;
      const kw = FAMILY_KW[f];
      const nets = prefixes(s.subnets.filter((p) => p.family === f));
      rules.push({ name: `hairpin-${s.name}-${suffix(f)}`, text: `${kw} saddr ${nets} ${kw} daddr ${nets} ct status dnat counter masquerade` });
    }
  }
  if (ext) {
    for (const s of n.segments) {
      if (s.mode !== 'gateway' || !s.internet) continue;
      for (const f of families(s)) {
        const kw = FAMILY_KW[f];
        // SNAT to the appliance's own address: masquerade would pick any address of the interface,
        // a held public address of a replica's mapping included (IPv6 source selection does).
        const to = ext.snat[f];
        rules.push({
          name: `masq-${s.name}-${suffix(f)}`,
          text: `oifname ${quote(ext.name)} ${kw} saddr ${prefixes(s.subnets.filter((p) => p.family === f))} counter ${to === undefined ? 'masquerade' : `snat ${kw} to ${to}`}`,
        });
      }
    }
  }
  return rules;
}

/** The chains of a normalized state, in rendering order. */
export function layoutRuleset(n: NormFirewall): RenderedChain[] {
  const byName = new Map(n.segments.map((s) => [s.name, s]));
  const seg = (name: string): NormSegment => byName.get(name)!;
  // Public IP rules act only while their segment is in gateway mode.
  const active = n.rules.filter((r) => seg(r.segment).mode === 'gateway');
  const output = bridgeOutput(n);
  const chains: RenderedChain[] = [
    { family: 'bridge', chain: 'forward', header: 'type filter hook forward priority filter; policy accept;', rules: bridgeForward(n) },
    ...(output.length > 0 ? [{ family: 'bridge', chain: 'output', header: 'type filter hook output priority filter; policy accept;', rules: output } as const] : []),
    { family: 'inet', chain: 'forward', header: 'type filter hook forward priority filter; policy drop;', rules: inetForward(n, active, seg) },
    { family: 'inet', chain: 'prerouting', header: 'type nat hook prerouting priority dstnat; policy accept;', rules: inetPrerouting(active) },
    { family: 'inet', chain: 'postrouting', header: 'type nat hook postrouting priority srcnat; policy accept;', rules: inetPostrouting(n, active) },
  ];
  const seen = new Set<string>();
  for (const c of chains) {
    for (const r of c.rules) {
      // Names are built from validated names with distinct prefixes; a clash is a bug here.
      if (seen.has(r.name)) throw new Error(`nft renderer: rule name ${r.name} used twice`);
      seen.add(r.name);
    }
  }
  return chains;
}

/** The counter names the ruleset of `desired` defines, in rendering order. */
export function ruleNames(desired: DesiredFirewall): string[] {
  return layoutRuleset(normalizeFirewall(desired)).flatMap((c) => c.rules.map((r) => r.name));
}

/** The script that deletes an appliance's tables, if present (idempotent, one transaction). */
export function renderRemoval(table: string): string {
  return [
    `table bridge ${table} {}`,
    `delete table bridge ${table}`,
    `table inet ${table} {}`,
    `delete table inet ${table}`,
    '',
  ].join('\n');
}

/**
 * The full `nft -f` script for `desired`: remove the appliance's two tables
 * (if present) and define them anew, in one transaction. Pure; throws
 * ValidationError on an invalid desired state.
 */
export function renderRuleset(desired: DesiredFirewall, opts: RenderOptions = {}): string {
  const n = normalizeFirewall(desired);
  if (opts.tag !== undefined && !/^[0-9a-f]{1,64}$/.test(opts.tag)) throw new Error(`nft renderer: tag "${opts.tag}" must be 1-64 lowercase hex digits`);
  const chains = layoutRuleset(n);
  const out: string[] = [
    `# nea appliance ${n.appliance}: generated from its desired state; replaced as a whole on every change.`,
    renderRemoval(n.table),
  ];
  for (const family of ['bridge', 'inet'] as const) {
    out.push(`table ${family} ${n.table} {`);
    if (opts.tag !== undefined) out.push(`\tcomment "nea:${opts.tag}"`);
    const own = chains.filter((c) => c.family === family);
    own.forEach((c, i) => {
      if (i > 0) out.push('');
      out.push(`\tchain ${c.chain} {`, `\t\t${c.header}`);
      for (const r of c.rules) out.push(`\t\t${r.text} comment ${quote(r.name)}`);
      out.push('\t}');
    });
    out.push('}', '');
  }
  return out.join('\n');
}
