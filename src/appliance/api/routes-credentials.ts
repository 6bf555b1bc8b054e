/**
 * API tokens and pairing.
 *
 * Pairing, end to end:
 *   1. on the SP appliance, `POST /v1/pairing-tokens` mints a one-time token
 *      (credentials.ts) for some segments; only its hash is kept;
 *   2. on the tenant appliance, `POST /v1/pairings {token}` (what `nea pair`
 *      calls) checks the token's own signature and expiry, then calls the
 *      SP's `POST /v1/pairing/redeem` over HTTPS pinned to the fingerprint
 *      in the token, sending its tunnel public key;
 *   3. the SP checks the token (its signature, hash, unused, unexpired,
 *      unrevoked), marks it used and adds the tenant as a peer carrying the
 *      token's segments, in one serialized change: of two concurrent
 *      redemptions exactly one wins, the other gets PAIRING_TOKEN_USED;
 *   4. the tenant adds the SP as a peer (its endpoint, the segments) and the
 *      tunnel comes up.
 * A failed apply on the SP leaves the token unused (the tenant may retry).
 */
import { Type, type Static } from '@sinclair/typebox';
import {
  ApiTokenCreate, ApiTokenCreated, ApiTokenView, PairingRedeem, PairingRedeemed, PairingTokenCreate, PairingTokenCreated,
  PairingTokenView, PairRequest, PeerView, Problem,
  type PairingRedeemed as PairingRedeemedT, type PairingTokenView as PairingTokenViewT, type Peer,
} from '../../protocol/appliance-api.js';
import { NeaError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import {
  createApiToken, decodePairingToken, mintPairingToken, pairingState, secretMatches, type SigningKey,
} from '../credentials.js';
import type { StateManager } from '../manager.js';
import type { ApiTokenRecord, PairingTokenRecord } from '../state.js';
import type { ApiApp } from './app.js';
import { ApiError } from '../../shared/api-client.js';
import { peerView } from './views.js';

export interface PairingOptions {
  signingKey: SigningKey;
  /** SHA-256 fingerprint of this appliance's API certificate (hex). */
  fingerprint: string;
  /** Tunnel endpoint put in tokens when the request gives none (`ADDR:PORT` as tenants reach it). */
  endpoint?: string;
  /** API URL put in tokens when the request gives none (`https://ADDR:PORT` as tenants reach it). */
  apiUrl?: string;
  /** How a tenant appliance calls its SP's redemption route (client.ts in production, inject() in tests). */
  redeem(target: { url: string; fingerprint: string }, body: { token: string; publicKey: string; name?: string }): Promise<PairingRedeemedT>;
  /** Persistent keepalive (s) on the tenant's SP peer, so NAT state towards the SP stays open; default 25. */
  keepaliveSeconds?: number;
}

/** Used, expired and revoked pairing records are kept this long (for listing), then pruned. */
export const PAIRING_RECORD_KEEP_MS = 7 * 86400_000;

function tokenView(r: ApiTokenRecord): Static<typeof ApiTokenView> {
  return { id: r.id, name: r.name, scope: r.scope, createdAt: r.createdAt, ...(r.revokedAt !== undefined && { revokedAt: r.revokedAt }) };
}

function pairingView(r: PairingTokenRecord, now: Date): PairingTokenViewT {
  return {
    id: r.id, segments: r.segments, ...(r.name !== undefined && { name: r.name }), createdAt: r.createdAt, expiresAt: r.expiresAt,
    state: pairingState(r, now), ...(r.usedBy !== undefined && { usedBy: r.usedBy }),
  };
}

/** Revoked API tokens kept (newest first); older ones are dropped, and stay refused (401 instead of 403). */
export const REVOKED_TOKENS_KEPT = 256;
/** Used, expired or revoked pairing records kept at most, besides the age limit. */
export const SPENT_PAIRING_RECORDS_KEPT = 2048;

function prune(records: PairingTokenRecord[], now: Date): PairingTokenRecord[] {
  const spentAt = (r: PairingTokenRecord): number => Date.parse(r.usedAt ?? r.revokedAt ?? r.expiresAt);
  const spent = records.filter((r) => pairingState(r, now) !== 'unused' && now.getTime() - spentAt(r) < PAIRING_RECORD_KEEP_MS)
    .sort((a, b) => spentAt(b) - spentAt(a)).slice(0, SPENT_PAIRING_RECORDS_KEPT);
  return records.filter((r) => pairingState(r, now) === 'unused' || spent.includes(r));
}

function pruneRevoked(records: ApiTokenRecord[]): ApiTokenRecord[] {
  const keep = new Set(records.filter((r) => r.revokedAt !== undefined).sort((a, b) => Date.parse(b.revokedAt!) - Date.parse(a.revokedAt!)).slice(0, REVOKED_TOKENS_KEPT));
  return records.filter((r) => r.revokedAt === undefined || keep.has(r));
}

export interface CredentialRouteOptions {
  manager: StateManager;
  log: Logger;
  pairing: PairingOptions;
  errors: { '4xx': typeof Problem; '5xx': typeof Problem };
  redeemRateMax: number;
  windowMs: number;
}

export function registerCredentialRoutes(app: ApiApp, o: CredentialRouteOptions): void {
  const { manager, log, pairing, errors } = o;
  const IdParams = Type.Object({ id: Type.String({ pattern: '^[A-Za-z0-9_-]{8,32}$' }) });

  // --- API tokens ---------------------------------------------------------------------

  app.get('/v1/api-tokens', {
    schema: { summary: 'list API tokens (never their secrets)', tags: ['auth'], response: { 200: Type.Object({ items: Type.Array(ApiTokenView) }), ...errors } },
  }, () => ({ items: manager.snapshot().apiTokens.map(tokenView) }));

  app.post('/v1/api-tokens', {
    schema: { summary: 'issue a bearer token for a client (shown once)', tags: ['auth'], body: ApiTokenCreate, response: { 201: ApiTokenCreated, ...errors } },
  }, async (req, reply) => {
    const t = createApiToken(req.body.name, req.body.scope, manager.now());
    await manager.change('POST /v1/api-tokens', (d) => {
      if (d.apiTokens.filter((r) => r.revokedAt === undefined).length >= 256) throw new NeaError('API_CONFLICT', 'at most 256 live API tokens; revoke unused ones first');
      d.apiTokens = [...pruneRevoked(d.apiTokens), t.record];
    });
    log.info('API token issued', { id: t.record.id, name: t.record.name, scope: t.record.scope });
    return reply.code(201).send({ ...tokenView(t.record), token: t.token });
  });

  app.delete('/v1/api-tokens/:id', {
    schema: { summary: 'revoke an API token (at once: its next request is refused)', tags: ['auth'], params: IdParams, response: { 204: Type.Null(), ...errors } },
  }, async (req, reply) => {
    const { id } = req.params;
    const revoked = await manager.change(`DELETE /v1/api-tokens/${id}`, (d) => {
      const r = d.apiTokens.find((x) => x.id === id);
      if (!r) throw new NeaError('API_NOT_FOUND', `API token ${id} does not exist`);
      if (r.revokedAt !== undefined) return false;
      r.revokedAt = manager.now().toISOString();
      return true;
    });
    if (revoked) log.info('API token revoked', { id });
    return reply.code(204).send(null);
  });

  // --- pairing tokens (SP) ---------------------------------------------------------------

  const requireRole = (role: 'sp' | 'tenant', what: string): void => {
    if (manager.control.role !== role) throw new NeaError('PAIRING_WRONG_ROLE', `${what} is done on ${role === 'sp' ? 'an SP' : 'a tenant'} appliance; this one is ${manager.control.role === 'sp' ? 'an SP' : 'a tenant'} appliance`);
  };

  app.get('/v1/pairing-tokens', {
    schema: { summary: 'list pairing tokens and their state (never their secrets)', tags: ['pairing'], response: { 200: Type.Object({ items: Type.Array(PairingTokenView) }), ...errors } },
  }, () => { const now = manager.now(); return { items: manager.snapshot().pairingTokens.map((r) => pairingView(r, now)) }; });

  app.post('/v1/pairing-tokens', {
    schema: { summary: 'mint a one-time pairing token (SP appliance; shown once)', tags: ['pairing'], body: PairingTokenCreate, response: { 201: PairingTokenCreated, ...errors } },
  }, async (req, reply) => {
    requireRole('sp', 'minting a pairing token');
    const b = req.body;
    const endpoint = b.endpoint ?? pairing.endpoint;
    const apiUrl = b.apiUrl ?? pairing.apiUrl;
    if (endpoint === undefined) throw new NeaError('INVALID_INPUT', 'body.endpoint: required (this appliance has no default tunnel endpoint: start it with --advertise-endpoint)');
    if (apiUrl === undefined) throw new NeaError('INVALID_INPUT', 'body.apiUrl: required (this appliance has no default API URL: start it with --advertise-api)');
    const now = manager.now();
    const minted = await manager.change('POST /v1/pairing-tokens', (d) => {
      const missing = b.segments.find((id) => !d.desired.segments.some((s) => s.id === id));
      if (missing !== undefined) throw new NeaError('INVALID_INPUT', `body.segments: segment ${missing} does not exist on this appliance`);
      d.pairingTokens = prune(d.pairingTokens, now);
      if (d.pairingTokens.filter((r) => pairingState(r, now) === 'unused').length >= 1024) throw new NeaError('API_CONFLICT', 'at most 1024 unused pairing tokens; revoke some first');
      const m = mintPairingToken({
        key: pairing.signingKey, spPublicKey: manager.control.publicKey(), endpoint, apiUrl, fingerprint: pairing.fingerprint,
        segments: b.segments, ttlSeconds: b.ttlSeconds, now, ...(b.name !== undefined && { name: b.name }),
      });
      d.pairingTokens.push(m.record);
      return m;
    });
    log.info('pairing token minted', { id: minted.record.id, segments: b.segments.join(','), expiresAt: minted.record.expiresAt });
    return reply.code(201).send({ ...pairingView(minted.record, now), token: minted.token });
  });

  app.delete('/v1/pairing-tokens/:id', {
    schema: { summary: 'revoke a pairing token', tags: ['pairing'], params: IdParams, response: { 204: Type.Null(), ...errors } },
  }, async (req, reply) => {
    const { id } = req.params;
    const revoked = await manager.change(`DELETE /v1/pairing-tokens/${id}`, (d) => {
      const r = d.pairingTokens.find((x) => x.id === id);
      if (!r) throw new NeaError('API_NOT_FOUND', `pairing token ${id} does not exist`);
      if (r.revokedAt !== undefined || r.usedAt !== undefined) return false;
      r.revokedAt = manager.now().toISOString();
      return true;
    });
    if (revoked) log.info('pairing token revoked', { id });
    return reply.code(204).send(null);
  });

  app.post('/v1/pairing/redeem', {
    config: { public: true, rateLimit: { max: o.redeemRateMax, timeWindow: o.windowMs } },
    schema: {
      summary: 'redeem a pairing token: register a tenant appliance\'s public key (SP appliance; the token is the credential)',
      tags: ['pairing'], security: [], body: PairingRedeem, response: { 200: PairingRedeemed, ...errors },
    },
  }, async (req) => {
    requireRole('sp', 'redeeming a pairing token');
    const payload = decodePairingToken(req.body.token, pairing.signingKey.publicKey);
    const tenantKey = req.body.publicKey;
    const now = manager.now();
    const result = await manager.change('pairing redemption', (d) => {
      const r = d.pairingTokens.find((x) => x.id === payload.id);
      if (!secretMatches(payload.s, r?.hash)) throw new NeaError('PAIRING_TOKEN_INVALID', 'not a valid pairing token: unknown to this appliance');
      const state = pairingState(r!, now);
      if (state === 'used') throw new NeaError('PAIRING_TOKEN_USED', 'this pairing token was already used; mint a new one');
      if (state === 'revoked') throw new NeaError('PAIRING_TOKEN_REVOKED', 'this pairing token was revoked; mint a new one');
      if (state === 'expired') throw new NeaError('PAIRING_TOKEN_EXPIRED', `this pairing token expired at ${r!.expiresAt}; mint a new one`);
      if (tenantKey === manager.control.publicKey()) throw new NeaError('INVALID_INPUT', 'body.publicKey: is this appliance\'s own key');
      r!.usedAt = now.toISOString();
      r!.usedBy = tenantKey;
      const peer: Peer = { publicKey: tenantKey, segments: r!.segments, ...((req.body.name ?? r!.name) !== undefined && { name: req.body.name ?? r!.name }) };
      const i = d.desired.peers.findIndex((p) => p.publicKey === tenantKey);
      if (i >= 0) d.desired.peers[i] = { ...d.desired.peers[i]!, segments: r!.segments };
      else d.desired.peers.push(peer);
      return { publicKey: manager.control.publicKey(), endpoint: r!.endpoint, segments: r!.segments, name: manager.control.name };
    });
    log.info('pairing token redeemed', { id: payload.id, peer: tenantKey, segments: result.segments.join(',') });
    return result;
  });

  // --- pairing (tenant) --------------------------------------------------------------------

  app.post('/v1/pairings', {
    schema: {
      summary: 'pair this tenant appliance with an SP appliance using a pairing token (what `nea pair TOKEN` calls)',
      tags: ['pairing'], body: PairRequest, response: { 200: Type.Object({ peer: PeerView, sp: PairingRedeemed }), ...errors },
    },
  }, async (req) => {
    requireRole('tenant', 'pairing with a token');
    const p = decodePairingToken(req.body.token);
    if (p.exp * 1000 <= manager.now().getTime()) throw new NeaError('PAIRING_TOKEN_EXPIRED', `this pairing token expired at ${new Date(p.exp * 1000).toISOString()}; ask the SP for a new one`);
    const segs = manager.snapshot().desired.segments;
    const missing = p.seg.find((id) => !segs.some((s) => s.id === id));
    if (missing !== undefined) throw new NeaError('API_CONFLICT', `the token is for segment ${missing}, which this appliance does not have; add the segment first`);
    let sp: PairingRedeemedT;
    try {
      sp = await pairing.redeem({ url: p.api, fingerprint: p.fp }, { token: req.body.token, publicKey: manager.control.publicKey(), name: manager.control.name });
    } catch (e) {
      // The SP's refusal of the token is the caller's to see as it is; anything else is a failed pairing.
      if (e instanceof ApiError && e.code.startsWith('PAIRING_TOKEN_')) throw new NeaError(e.code, `the SP appliance refused the token: ${e.message}`);
      throw new NeaError('PAIRING_FAILED', `pairing with ${p.api} failed: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (sp.publicKey !== p.sp) throw new NeaError('PAIRING_FAILED', `the SP appliance answered with key ${sp.publicKey}, not the ${p.sp} its token names`);
    const peer: Peer = { publicKey: sp.publicKey, name: sp.name, endpoint: sp.endpoint, segments: sp.segments, persistentKeepalive: pairing.keepaliveSeconds ?? 25 };
    await manager.change('pairing', (d) => {
      const i = d.desired.peers.findIndex((x) => x.publicKey === peer.publicKey);
      if (i >= 0) d.desired.peers[i] = { ...d.desired.peers[i]!, ...peer };
      else d.desired.peers.push(peer);
    });
    log.info('paired with an SP appliance', { peer: sp.publicKey, endpoint: sp.endpoint, segments: sp.segments.join(',') });
    return { peer: peerView(manager.snapshot().desired.peers.find((x) => x.publicKey === peer.publicKey)!), sp };
  });
}
