/**
 * Commands that talk to an appliance's management API: `nea status`,
 * `nea pair`, `nea pairing-token`, `nea api-token`.
 *
 * Which appliance, from the first that gives it:
 *   --url URL --fingerprint SHA256 --token TOKEN (or --token-file FILE),
 *   the environment (NEA_URL, NEA_FINGERPRINT, NEA_TOKEN),
 *   the local appliance's state dir (--state-dir, default /var/lib/nea):
 *   its api.json (URL and fingerprint) and api-token (an admin token).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { apiRequest, type ApiTarget } from '../shared/api-client.js';
import { API_INFO_FILE, LOCAL_TOKEN_FILE, type ApiInfo } from '../appliance/service.js';
import type { PairingTokenView, StatusView } from '../protocol/appliance-api.js';
import { parse } from './appliance.js';
import { register, UsageError } from './main.js';

const DEFAULT_STATE_DIR = '/var/lib/nea';
const TARGET_OPTIONS = {
  url: { type: 'string' }, fingerprint: { type: 'string' }, token: { type: 'string' }, 'token-file': { type: 'string' }, 'state-dir': { type: 'string' },
} as const;
const TARGET_USAGE = '[--state-dir DIR | --url https://HOST:PORT --fingerprint SHA256 --token TOKEN|--token-file FILE]';

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw new UsageError(`cannot read ${what} ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'}): is the appliance running with that --state-dir, or give --url, --fingerprint and --token`);
  }
}

/** The appliance to talk to (see the file comment). */
export function resolveTarget(v: Record<string, string | boolean | undefined | (string | boolean)[]>, env: NodeJS.ProcessEnv = process.env): ApiTarget {
  const str = (k: string): string | undefined => (typeof v[k] === 'string' ? v[k] : undefined);
  const stateDir = str('state-dir') ?? DEFAULT_STATE_DIR;
  let url = str('url') ?? env.NEA_URL;
  let fingerprint = str('fingerprint') ?? env.NEA_FINGERPRINT;
  const tokenFile = str('token-file');
  let token = str('token') ?? (tokenFile !== undefined ? readText(tokenFile, 'token file') : env.NEA_TOKEN);
  if (url === undefined || fingerprint === undefined) {
    if (url !== undefined && fingerprint === undefined) throw new UsageError('--fingerprint SHA256 is required with --url (the appliance\'s certificate fingerprint, as `nea status` on it prints)');
    const info = JSON.parse(readText(join(stateDir, API_INFO_FILE), 'API info')) as ApiInfo;
    url ??= info.url;
    fingerprint ??= info.fingerprint;
    token ??= readText(join(stateDir, LOCAL_TOKEN_FILE), 'local API token');
  }
  return { url, fingerprint, ...(token !== undefined && { token }) };
}

const fmtBytes = (n: number): string => (n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(1)} GiB` : n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);
const fmtAgo = (ms: number | null): string => (ms === null ? 'never' : ms < 1000 ? 'just now' : ms < 120_000 ? `${Math.round(ms / 1000)} s ago` : `${Math.round(ms / 60_000)} min ago`);

function table(head: string[], rows: string[][]): string[] {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => `  ${r.map((c, i) => c.padEnd(w[i]!)).join('  ')}`.trimEnd();
  return [line(head), ...rows.map(line)];
}

/** An appliance's status as tables for people: peers, segments, public IP rules. */
export function formatApiStatus(s: StatusView, target?: { url: string; fingerprint: string }): string {
  const out = [`appliance ${s.name} (role ${s.role}, state version ${s.version})`, `  public key  ${s.publicKey}`];
  if (s.listenPort !== null) out.push(`  tunnel      udp port ${s.listenPort}`);
  if (target) out.push(`  api         ${target.url}  (sha256 ${target.fingerprint})`);
  if (s.reconcileErrors > 0) out.push(`  reconcile   ${s.reconcileErrors} failed, last: ${s.lastReconcileError ?? '-'}`);
  out.push('', 'peers');
  out.push(...(s.peers.length === 0 ? ['  (none)'] : table(['name', 'public key', 'state', 'endpoint', 'handshake', 'segments', 'rx', 'tx'], s.peers.map((p) => [
    p.name ?? '-', p.publicKey, p.up ? 'up' : 'down', p.endpoint ?? '-', fmtAgo(p.lastHandshakeAgoMs), p.segments.join(',') || '-',
    fmtBytes(p.counters.rxBytes), fmtBytes(p.counters.txBytes),
  ]))));
  out.push('', 'segments');
  out.push(...(s.segments.length === 0 ? ['  (none)'] : table(['id', 'name', 'mode', 'internet', 'to tunnel', 'from tunnel', 'drops'], s.segments.map((g) => [
    String(g.id), g.name, g.mode, g.internet ? 'yes' : 'no', String(g.toTunnel), String(g.fromTunnel),
    Object.entries(g.drops).map(([k, n]) => `${k}=${n}`).join(' ') || '0',
  ]))));
  out.push('', `public IP rules (routing between segments: ${s.routing.betweenSegments ? 'on' : 'off'})`);
  out.push(...(s.publicRules.length === 0 ? ['  (none)'] : table(['name', 'segment', 'public', 'replica', 'hits'], s.publicRules.map((r) => [
    r.name, String(r.segment),
    r.kind === 'port' ? `${r.publicAddress}:${r.publicPort ?? ''}/${r.protocol ?? ''}` : `${r.publicAddress} (1:1)`,
    r.kind === 'port' ? `${r.target}:${r.targetPort ?? r.publicPort ?? ''}` : r.target,
    r.hits ? `${r.hits.packets} pkts` : '-',
  ]))));
  return out.join('\n');
}

register({
  path: ['status'],
  summary: "show an appliance's peers, segments, modes and public IP rules (management API)",
  usage: `nea status ${TARGET_USAGE} [--json]`,
  async run(args) {
    const v = parse(args, { ...TARGET_OPTIONS, json: { type: 'boolean' } });
    const t = resolveTarget(v);
    const r = await apiRequest<StatusView>(t, 'GET', '/v1/status');
    console.log(v.json ? JSON.stringify(r.body, null, 2) : formatApiStatus(r.body, t));
    return 0;
  },
});

register({
  path: ['pair'],
  summary: 'pair this tenant appliance with an SP appliance, using a pairing token from it',
  usage: `nea pair TOKEN ${TARGET_USAGE}`,
  async run(args) {
    const [token, ...rest] = args;
    if (token === undefined || token.startsWith('--')) throw new UsageError('the pairing token is required (from `nea pairing-token create` on the SP appliance)');
    const t = resolveTarget(parse(rest, TARGET_OPTIONS));
    const r = await apiRequest<{ sp: { name: string; publicKey: string; endpoint: string; segments: number[] } }>(t, 'POST', '/v1/pairings', { token });
    console.log(`paired with SP appliance ${r.body.sp.name} (${r.body.sp.publicKey}) at ${r.body.sp.endpoint}, segments ${r.body.sp.segments.join(',')}`);
    return 0;
  },
});

register({
  path: ['pairing-token', 'create'],
  summary: 'mint a one-time pairing token on this SP appliance (printed once)',
  usage: `nea pairing-token create --segments ID[,ID...] [--ttl SECONDS] [--endpoint ADDR:PORT] [--api-url URL] [--name NAME] ${TARGET_USAGE} [--json]`,
  async run(args) {
    const v = parse(args, {
      ...TARGET_OPTIONS, segments: { type: 'string' }, ttl: { type: 'string' }, endpoint: { type: 'string' }, 'api-url': { type: 'string' }, name: { type: 'string' }, json: { type: 'boolean' },
    });
    if (typeof v.segments !== 'string' || !/^\d+(,\d+)*$/.test(v.segments)) throw new UsageError('--segments ID[,ID...] is required');
    const ttl = typeof v.ttl === 'string' ? Number(v.ttl) : 3600;
    if (!Number.isInteger(ttl)) throw new UsageError('--ttl: seconds, an integer');
    const body = {
      segments: v.segments.split(',').map(Number), ttlSeconds: ttl,
      ...(typeof v.endpoint === 'string' && { endpoint: v.endpoint }),
      ...(typeof v['api-url'] === 'string' && { apiUrl: v['api-url'] }),
      ...(typeof v.name === 'string' && { name: v.name }),
    };
    const r = await apiRequest<PairingTokenView & { token: string }>(resolveTarget(v), 'POST', '/v1/pairing-tokens', body);
    console.log(v.json ? JSON.stringify(r.body, null, 2) : r.body.token);
    if (!v.json) console.error(`pairing token ${r.body.id} for segments ${r.body.segments.join(',')}, valid until ${r.body.expiresAt}; on the tenant appliance: nea pair TOKEN`);
    return 0;
  },
});

register({
  path: ['api-token', 'create'],
  summary: 'issue a bearer token for an API client (printed once)',
  usage: `nea api-token create --name NAME [--scope admin|read] ${TARGET_USAGE}`,
  async run(args) {
    const v = parse(args, { ...TARGET_OPTIONS, name: { type: 'string' }, scope: { type: 'string' } });
    if (typeof v.name !== 'string') throw new UsageError('--name NAME is required');
    const r = await apiRequest<{ id: string; token: string }>(resolveTarget(v), 'POST', '/v1/api-tokens', { name: v.name, scope: typeof v.scope === 'string' ? v.scope : 'admin' });
    console.log(r.body.token);
    console.error(`API token ${r.body.id}; revoke with: nea api-token revoke ${r.body.id}`);
    return 0;
  },
});

register({
  path: ['api-token', 'revoke'],
  summary: 'revoke an API token (its next request is refused)',
  usage: `nea api-token revoke ID ${TARGET_USAGE}`,
  async run(args) {
    const [id, ...rest] = args;
    if (id === undefined || id.startsWith('--')) throw new UsageError('the token id is required (nea api-token list)');
    await apiRequest(resolveTarget(parse(rest, TARGET_OPTIONS)), 'DELETE', `/v1/api-tokens/${encodeURIComponent(id)}`);
    return 0;
  },
});

register({
  path: ['api-token', 'list'],
  summary: 'list API tokens (ids, names, scopes; never the secrets)',
  usage: `nea api-token list ${TARGET_USAGE}`,
  async run(args) {
    const r = await apiRequest<{ items: { id: string; name: string; scope: string; createdAt: string; revokedAt?: string }[] }>(resolveTarget(parse(args, TARGET_OPTIONS)), 'GET', '/v1/api-tokens');
    console.log(table(['id', 'name', 'scope', 'created', 'revoked'], r.body.items.map((t) => [t.id, t.name, t.scope, t.createdAt, t.revokedAt ?? '-'])).join('\n'));
    return 0;
  },
});
