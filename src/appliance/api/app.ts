/**
 * The management API of one appliance, built as a fastify app (no socket:
 * `listen` is the caller's; tests call `inject()`).
 *
 * Request pipeline, in order (1, 3, 4 and the error mapping are shared
 * with the control plane's API: src/shared/http-api.ts):
 *   1. rate limit per client address (onRequest; 429 with retry-after);
 *   2. authentication (preParsing, so an unauthenticated body is never
 *      parsed): bearer token, constant-time check (credentials.ts); routes
 *      marked public skip it; a `read` token may only GET;
 *   3. body parsing: JSON only, at most `bodyLimit` bytes (413), `__proto__`
 *      and `constructor.prototype` refused (400);
 *   4. schema validation (TypeBox, unknown fields refused, no coercion);
 *   5. the handler; every change goes through StateManager.change.
 * Every error is problem+json with a registry code; input is
 * never answered with a 5xx.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import {
  Desired, DesiredView, Peer, PeerBody, PeerView, Problem, PublicRule, PublicRuleBody, Routing, Segment, SegmentBody, StatusView,
} from '../../protocol/appliance-api.js';
import { NeaError } from '../../shared/errors.js';
import { createHttpApi, DEFAULT_BODY_LIMIT, type ApiApp } from '../../shared/http-api.js';
import type { Logger } from '../../shared/log.js';
import { checkBearer } from '../credentials.js';
import { checkPrecondition, type StateManager } from '../manager.js';
import { itemKey } from '../state.js';
import { renderMetrics } from './metrics.js';
import { desiredView, peerView, statusView } from './views.js';
import { registerCredentialRoutes, type PairingOptions } from './routes-credentials.js';

export type { ApiApp };
export { DEFAULT_BODY_LIMIT };

export interface ApiOptions {
  manager: StateManager;
  log: Logger;
  /** Pairing: signing key, TLS fingerprint, defaults, and how a tenant reaches an SP. */
  pairing: PairingOptions;
  /** TLS identity; absent: plain HTTP (tests with inject only). */
  tls?: { key: string; cert: string };
  /** Largest request body in bytes; default 65536. */
  bodyLimit?: number;
  /** Requests per client address per window; default 600 per 60000 ms. */
  rateLimit?: { max: number; windowMs: number };
  /** Redemptions per client address per window (unauthenticated route); default 10 per window. */
  redeemRateMax?: number;
}

const ERRORS = { '4xx': Problem, '5xx': Problem } as const;

export async function buildApi(opts: ApiOptions): Promise<ApiApp> {
  const { manager, log } = opts;
  const app = await createHttpApi({
    log, server: 'the appliance',
    title: 'nea appliance management API', description: 'Desired state, status, tokens and pairing of one nea appliance (docs/api.md).',
    ...(opts.tls && { tls: opts.tls }),
    ...(opts.bodyLimit !== undefined && { bodyLimit: opts.bodyLimit }),
    ...(opts.rateLimit && { rateLimit: opts.rateLimit }),
  });

  app.addHook('preParsing', async (req, _reply, payload) => {
    if (req.routeOptions.config.public === true || req.is404) return payload;
    const r = checkBearer(req.headers.authorization, manager.snapshot().apiTokens);
    if (!r.ok) {
      const msg = r.code === 'API_AUTH_REQUIRED' ? 'send Authorization: Bearer <token>' : r.code === 'API_TOKEN_REVOKED' ? 'this token was revoked' : 'this token is not valid here';
      throw new NeaError(r.code, msg);
    }
    if (r.record.scope === 'read' && req.method !== 'GET' && req.method !== 'HEAD') throw new NeaError('API_FORBIDDEN', `token "${r.record.name}" may only read`);
    return payload;
  });

  // --- health, status, metrics, OpenAPI ---------------------------------------------

  app.get('/v1/health', {
    config: { public: true },
    schema: { summary: 'liveness (no authentication)', tags: ['status'], security: [], response: { 200: Type.Object({ status: Type.Literal('ok') }), ...ERRORS } },
  }, () => ({ status: 'ok' as const }));

  app.get('/v1/openapi.json', {
    config: { public: true },
    schema: { summary: 'this API as an OpenAPI 3 document', tags: ['status'], security: [], hide: true },
  }, () => app.swagger());

  app.get('/v1/status', {
    schema: { summary: 'role, tunnel peers, segments, public IP rules with counters', tags: ['status'], response: { 200: StatusView, ...ERRORS } },
  }, async () => statusView(manager));

  app.get('/metrics', {
    schema: { summary: 'Prometheus metrics (text format 0.0.4)', tags: ['status'], produces: ['text/plain'], response: { 200: Type.String(), ...ERRORS } },
  }, async (_req, reply) => {
    const s = manager.snapshot();
    const text = renderMetrics({ live: await manager.control.status(), desired: s.desired, version: s.version, reconcile: manager.counters });
    return reply.type('text/plain; version=0.0.4; charset=utf-8').send(text);
  });

  // --- desired state -----------------------------------------------------------------

  const ifHeaders = Type.Object({ 'if-match': Type.Optional(Type.String({ maxLength: 200 })), 'if-none-match': Type.Optional(Type.String({ maxLength: 200 })) });
  const pre = (req: FastifyRequest): { ifMatch?: string; ifNoneMatch?: string } => ({
    ...(typeof req.headers['if-match'] === 'string' && { ifMatch: req.headers['if-match'] }),
    ...(typeof req.headers['if-none-match'] === 'string' && { ifNoneMatch: req.headers['if-none-match'] }),
  });
  const etag = (reply: FastifyReply, rev: number): void => { void reply.header('etag', `"${rev}"`); };

  app.get('/v1/desired', {
    schema: { summary: 'the whole desired state', tags: ['desired'], response: { 200: DesiredView, ...ERRORS } },
  }, (_req, reply) => {
    const s = manager.snapshot();
    etag(reply, s.revisions.desired ?? 0);
    return desiredView(s);
  });

  app.put('/v1/desired', {
    schema: { summary: 'replace the whole desired state (If-Match: the ETag of GET /v1/desired)', tags: ['desired'], headers: ifHeaders, body: Desired, response: { 200: DesiredView, ...ERRORS } },
  }, async (req, reply) => {
    await manager.change('PUT /v1/desired', (d) => {
      checkPrecondition(pre(req), d.revisions.desired ?? 0, 'the desired state');
      d.desired = { ...req.body, segments: [...req.body.segments].sort((a, b) => a.id - b.id) };
    });
    const s = manager.snapshot();
    etag(reply, s.revisions.desired ?? 0);
    return desiredView(s);
  });

  // Segments.
  const SegmentParams = Type.Object({ id: Type.String({ pattern: '^[1-9][0-9]{0,3}$', description: 'segment id 1..4094' }) });
  const segId = (p: { id: string }): number => {
    const id = Number(p.id);
    if (id > 4094) throw new NeaError('INVALID_INPUT', `params.id: segment id must be 1..4094, got ${id}`);
    return id;
  };
  app.get('/v1/segments', {
    schema: { summary: 'list segments', tags: ['desired'], response: { 200: Type.Object({ version: Type.Integer(), items: Type.Array(Segment) }), ...ERRORS } },
  }, () => { const s = manager.snapshot(); return { version: s.revisions.desired ?? 0, items: s.desired.segments }; });
  app.get('/v1/segments/:id', {
    schema: { summary: 'one segment (ETag: its version)', tags: ['desired'], params: SegmentParams, response: { 200: Segment, ...ERRORS } },
  }, (req, reply) => {
    const id = segId(req.params);
    const seg = manager.snapshot().desired.segments.find((x) => x.id === id);
    if (!seg) throw new NeaError('API_NOT_FOUND', `segment ${id} does not exist`);
    etag(reply, manager.revision(itemKey.segment(id)));
    return seg;
  });
  app.put('/v1/segments/:id', {
    schema: { summary: 'create or replace a segment (idempotent; If-Match / If-None-Match: *)', tags: ['desired'], params: SegmentParams, headers: ifHeaders, body: SegmentBody, response: { 200: Segment, 201: Segment, ...ERRORS } },
  }, async (req, reply) => {
    const id = segId(req.params);
    const key = itemKey.segment(id);
    const created = await manager.change(`PUT /v1/segments/${id}`, (d) => {
      checkPrecondition(pre(req), d.revisions[key] ?? 0, `segment ${id}`);
      const seg: Segment = { id, ...req.body };
      const i = d.desired.segments.findIndex((x) => x.id === id);
      if (i >= 0) d.desired.segments[i] = seg;
      else d.desired.segments = [...d.desired.segments, seg].sort((a, b) => a.id - b.id);
      return i < 0;
    });
    etag(reply, manager.revision(key));
    return reply.code(created ? 201 : 200).send(manager.snapshot().desired.segments.find((x) => x.id === id)!);
  });
  app.delete('/v1/segments/:id', {
    schema: { summary: 'delete a segment (refused while a peer or rule uses it)', tags: ['desired'], params: SegmentParams, headers: ifHeaders, response: { 204: Type.Null(), ...ERRORS } },
  }, async (req, reply) => {
    const id = segId(req.params);
    await manager.change(`DELETE /v1/segments/${id}`, (d) => {
      checkPrecondition(pre(req), d.revisions[itemKey.segment(id)] ?? 0, `segment ${id}`);
      if (!d.desired.segments.some((x) => x.id === id)) throw new NeaError('API_NOT_FOUND', `segment ${id} does not exist`);
      const peer = d.desired.peers.find((p) => p.segments.includes(id));
      if (peer) throw new NeaError('API_CONFLICT', `segment ${id} is carried by peer ${peer.publicKey}; remove it from the peer first`);
      const rule = d.desired.publicRules.find((r) => r.segment === id);
      if (rule) throw new NeaError('API_CONFLICT', `segment ${id} is the target of public rule ${rule.name}; delete the rule first`);
      d.desired.segments = d.desired.segments.filter((x) => x.id !== id);
    });
    return reply.code(204).send(null);
  });

  // Public IP rules.
  const RuleParams = Type.Object({ name: Type.String({ pattern: '^[a-z0-9][a-z0-9_]{0,31}$' }) });
  app.get('/v1/public-rules', {
    schema: { summary: 'list public IP rules', tags: ['desired'], response: { 200: Type.Object({ version: Type.Integer(), items: Type.Array(PublicRule) }), ...ERRORS } },
  }, () => { const s = manager.snapshot(); return { version: s.revisions.desired ?? 0, items: s.desired.publicRules }; });
  app.get('/v1/public-rules/:name', {
    schema: { summary: 'one public IP rule', tags: ['desired'], params: RuleParams, response: { 200: PublicRule, ...ERRORS } },
  }, (req, reply) => {
    const r = manager.snapshot().desired.publicRules.find((x) => x.name === req.params.name);
    if (!r) throw new NeaError('API_NOT_FOUND', `public rule ${req.params.name} does not exist`);
    etag(reply, manager.revision(itemKey.rule(r.name)));
    return r;
  });
  app.put('/v1/public-rules/:name', {
    schema: { summary: 'create or replace a public IP rule', tags: ['desired'], params: RuleParams, headers: ifHeaders, body: PublicRuleBody, response: { 200: PublicRule, 201: PublicRule, ...ERRORS } },
  }, async (req, reply) => {
    const { name } = req.params;
    const key = itemKey.rule(name);
    const created = await manager.change(`PUT /v1/public-rules/${name}`, (d) => {
      checkPrecondition(pre(req), d.revisions[key] ?? 0, `public rule ${name}`);
      const rule: PublicRule = { name, ...req.body };
      const i = d.desired.publicRules.findIndex((x) => x.name === name);
      if (i >= 0) d.desired.publicRules[i] = rule;
      else d.desired.publicRules.push(rule);
      return i < 0;
    });
    etag(reply, manager.revision(key));
    return reply.code(created ? 201 : 200).send(manager.snapshot().desired.publicRules.find((x) => x.name === name)!);
  });
  app.delete('/v1/public-rules/:name', {
    schema: { summary: 'delete a public IP rule', tags: ['desired'], params: RuleParams, headers: ifHeaders, response: { 204: Type.Null(), ...ERRORS } },
  }, async (req, reply) => {
    const { name } = req.params;
    await manager.change(`DELETE /v1/public-rules/${name}`, (d) => {
      checkPrecondition(pre(req), d.revisions[itemKey.rule(name)] ?? 0, `public rule ${name}`);
      if (!d.desired.publicRules.some((x) => x.name === name)) throw new NeaError('API_NOT_FOUND', `public rule ${name} does not exist`);
      d.desired.publicRules = d.desired.publicRules.filter((x) => x.name !== name);
    });
    return reply.code(204).send(null);
  });

  // Peers (the key in the path: base64, URL-encoded, or base64url).
  const PeerParams = Type.Object({ publicKey: Type.String({ pattern: '^[A-Za-z0-9+/_-]{43}=?$', description: 'the peer\'s public key, base64 (URL-encoded) or base64url' }) });
  const peerKey = (p: { publicKey: string }): string => {
    const k = p.publicKey.replace(/-/g, '+').replace(/_/g, '/');
    return k.endsWith('=') ? k : `${k}=`;
  };
  app.get('/v1/peers', {
    schema: { summary: 'list peers (preshared keys never shown)', tags: ['desired'], response: { 200: Type.Object({ version: Type.Integer(), items: Type.Array(PeerView) }), ...ERRORS } },
  }, () => { const s = manager.snapshot(); return { version: s.revisions.desired ?? 0, items: s.desired.peers.map(peerView) }; });
  app.get('/v1/peers/:publicKey', {
    schema: { summary: 'one peer', tags: ['desired'], params: PeerParams, response: { 200: PeerView, ...ERRORS } },
  }, (req, reply) => {
    const k = peerKey(req.params);
    const p = manager.snapshot().desired.peers.find((x) => x.publicKey === k);
    if (!p) throw new NeaError('API_NOT_FOUND', `peer ${k} does not exist`);
    etag(reply, manager.revision(itemKey.peer(k)));
    return peerView(p);
  });
  app.put('/v1/peers/:publicKey', {
    schema: { summary: 'create or replace a peer', tags: ['desired'], params: PeerParams, headers: ifHeaders, body: PeerBody, response: { 200: PeerView, 201: PeerView, ...ERRORS } },
  }, async (req, reply) => {
    const k = peerKey(req.params);
    const key = itemKey.peer(k);
    const created = await manager.change(`PUT /v1/peers/${k}`, (d) => {
      checkPrecondition(pre(req), d.revisions[key] ?? 0, `peer ${k}`);
      const peer: Peer = { publicKey: k, ...req.body };
      const i = d.desired.peers.findIndex((x) => x.publicKey === k);
      if (i >= 0) d.desired.peers[i] = peer;
      else d.desired.peers.push(peer);
      return i < 0;
    });
    etag(reply, manager.revision(key));
    return reply.code(created ? 201 : 200).send(peerView(manager.snapshot().desired.peers.find((x) => x.publicKey === k)!));
  });
  app.delete('/v1/peers/:publicKey', {
    schema: { summary: 'delete a peer (its tunnel session ends)', tags: ['desired'], params: PeerParams, headers: ifHeaders, response: { 204: Type.Null(), ...ERRORS } },
  }, async (req, reply) => {
    const k = peerKey(req.params);
    await manager.change(`DELETE /v1/peers/${k}`, (d) => {
      checkPrecondition(pre(req), d.revisions[itemKey.peer(k)] ?? 0, `peer ${k}`);
      if (!d.desired.peers.some((x) => x.publicKey === k)) throw new NeaError('API_NOT_FOUND', `peer ${k} does not exist`);
      d.desired.peers = d.desired.peers.filter((x) => x.publicKey !== k);
    });
    return reply.code(204).send(null);
  });

  // Routing between segments.
  app.get('/v1/routing', {
    schema: { summary: 'routing between the tenant\'s gateway segments', tags: ['desired'], response: { 200: Routing, ...ERRORS } },
  }, (_req, reply) => { etag(reply, manager.revision(itemKey.routing)); return manager.snapshot().desired.routing; });
  app.put('/v1/routing', {
    schema: { summary: 'set routing between segments', tags: ['desired'], headers: ifHeaders, body: Routing, response: { 200: Routing, ...ERRORS } },
  }, async (req, reply) => {
    await manager.change('PUT /v1/routing', (d) => {
      checkPrecondition(pre(req), d.revisions[itemKey.routing] ?? 0, 'routing');
      d.desired.routing = req.body;
    });
    etag(reply, manager.revision(itemKey.routing));
    return manager.snapshot().desired.routing;
  });

  registerCredentialRoutes(app, { manager, log, pairing: opts.pairing, errors: ERRORS, redeemRateMax: opts.redeemRateMax ?? 10, windowMs: opts.rateLimit?.windowMs ?? 60_000 });
  return app;
}

