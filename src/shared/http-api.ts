/**
 * What the management APIs (the appliance's, src/appliance/api/app.ts, and
 * the control plane's, src/control/api.ts) share: a fastify app (no socket:
 * `listen` is the caller's; tests call `inject()`) with
 *
 *   - rate limit per client address (onRequest; 429 with retry-after);
 *   - body parsing: JSON only (415 otherwise), at most `bodyLimit` bytes
 *     (413), `__proto__` and `constructor.prototype` anywhere refused (400,
 *     never merely dropped);
 *   - schema validation with TypeBox schemas: unknown fields refused, no
 *     coercion, no defaults filled in;
 *   - the OpenAPI document (swagger) built from the route schemas;
 *   - errors as `application/problem+json` (RFC 9457) with a code from the
 *     one registry (error-codes.ts): input the API refuses is a 4xx, only a
 *     failure of the server itself a 5xx; unknown routes 404.
 *
 * Authentication and the routes are each API's own.
 */
import type { Server } from 'node:http';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { ERROR_CODES, type ErrorCode } from './error-codes.js';
import { NeaError } from './errors.js';
import type { Logger } from './log.js';

export type ApiApp = FastifyInstance<Server, FastifyRequest['raw'], FastifyReply['raw'], FastifyInstance['log'], TypeBoxTypeProvider>;

/** Route config: `public` routes need no token. */
declare module 'fastify' {
  interface FastifyContextConfig { public?: boolean }
}

export const PROBLEM_TYPE = 'application/problem+json';
export const DEFAULT_BODY_LIMIT = 65_536;

/** RFC 9457 problem details with nea's error code (the TypeBox schema: src/protocol/appliance-api.ts `Problem`). */
export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
}

export function problem(code: ErrorCode, detail: string, status: number = ERROR_CODES[code].status): ProblemBody {
  return { type: `urn:nea:error:${code}`, title: ERROR_CODES[code].summary, status, detail, code };
}

interface AjvError { instancePath: string; message?: string; keyword: string; params: Record<string, unknown> }

/** `/a/0/b` → `a[0].b`. */
function field(context: string, pointer: string): string {
  const rest = pointer.split('/').slice(1).map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`)).join('');
  return `${context}${rest}`;
}

/** The first schema violation as `body.field: what`, naming unknown fields. */
export function validationDetail(context: string, errors: readonly AjvError[]): string {
  const e = errors[0];
  if (!e) return `${context}: invalid`;
  if (e.keyword === 'additionalProperties') return `${field(context, e.instancePath)}.${String(e.params.additionalProperty)}: unknown field`;
  if (e.keyword === 'required') return `${field(context, e.instancePath)}.${String(e.params.missingProperty)}: required`;
  return `${field(context, e.instancePath)}: ${e.message ?? e.keyword}`;
}

/**
 * Maps anything thrown while handling a request to a problem; `internal`:
 * a failure of the server (logged), not of the input. `server` names it in
 * the detail of a 500 ("the appliance", "the control plane").
 */
export function toProblem(err: unknown, server = 'the appliance'): { problem: ProblemBody; internal: boolean } {
  if (err instanceof NeaError) {
    const status = ERROR_CODES[err.code].status;
    return { problem: problem(err.code, err.message, status), internal: status >= 500 };
  }
  const e = err as Partial<FastifyError> & { validation?: AjvError[]; validationContext?: string };
  if (Array.isArray(e.validation)) return { problem: problem('INVALID_INPUT', validationDetail(e.validationContext ?? 'body', e.validation)), internal: false };
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return { problem: problem('API_BODY_TOO_LARGE', 'the request body is larger than the limit'), internal: false };
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return { problem: problem('API_UNSUPPORTED_MEDIA_TYPE', 'send the body as application/json'), internal: false };
  const status = typeof e.statusCode === 'number' ? e.statusCode : 500;
  if (status === 429) return { problem: problem('API_RATE_LIMITED', e.message ?? 'rate limited'), internal: false };
  if (status === 413) return { problem: problem('API_BODY_TOO_LARGE', e.message ?? 'body too large'), internal: false };
  if (status === 415) return { problem: problem('API_UNSUPPORTED_MEDIA_TYPE', e.message ?? 'unsupported media type'), internal: false };
  if (status === 404) return { problem: problem('API_NOT_FOUND', e.message ?? 'not found'), internal: false };
  // Other 4xx from the HTTP layer: malformed JSON, __proto__ in a body, a bad header.
  if (status >= 400 && status < 500) return { problem: problem('INVALID_INPUT', e.message ?? 'bad request', 400), internal: false };
  return { problem: problem('API_INTERNAL', `${server} failed while handling the request; see its log`), internal: true };
}

/** JSON.parse that refuses `__proto__` and `constructor.prototype` anywhere (prototype pollution). */
export function parseJsonStrict(text: string): unknown {
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text, (k, v: unknown) => {
      if (k === '__proto__') throw new NeaError('INVALID_INPUT', 'body: "__proto__" is not allowed as a field name (prototype pollution)');
      if (k === 'constructor' && typeof v === 'object' && v !== null && 'prototype' in v) throw new NeaError('INVALID_INPUT', 'body: "constructor.prototype" is not allowed (prototype pollution)');
      return v;
    }) as unknown;
  } catch (e) {
    throw e instanceof NeaError ? e : new NeaError('INVALID_INPUT', `body: not valid JSON: ${(e as Error).message}`);
  }
}

export interface HttpApiOptions {
  log: Logger;
  /** The OpenAPI document's title and description. */
  title: string;
  description: string;
  /** Who answers a 500 ("the appliance", "the control plane"). */
  server: string;
  /** TLS identity; absent: plain HTTP (tests with inject only). */
  tls?: { key: string; cert: string };
  /** Largest request body in bytes; default {@link DEFAULT_BODY_LIMIT}. */
  bodyLimit?: number;
  /** Requests per client address per window; default 600 per 60000 ms. */
  rateLimit?: { max: number; windowMs: number };
  /** OpenAPI security schemes (all HTTP bearer), the first the default of every route; default one, `bearer`. */
  securitySchemes?: Record<string, string>;
}

/** A fastify app with the shared pipeline (file comment); the caller adds authentication and routes. */
export async function createHttpApi(o: HttpApiOptions): Promise<ApiApp> {
  const base = {
    logger: false,
    bodyLimit: o.bodyLimit ?? DEFAULT_BODY_LIMIT,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    return503OnClosing: true,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } },
    // Errors the router raises before any route (a malformed URL, a path parameter over 100 characters).
    frameworkErrors: (err: Error, _req: FastifyRequest, reply: FastifyReply) => {
      void reply.code(400).type(PROBLEM_TYPE).send(toProblem(new NeaError('INVALID_INPUT', `path: ${err.message}`)).problem);
    },
  } as const;
  // With TLS the server is an https.Server; the routes do not care which.
  const raw = o.tls ? Fastify({ ...base, https: { key: o.tls.key, cert: o.tls.cert, minVersion: 'TLSv1.2' } }) as unknown as FastifyInstance : Fastify(base);
  const app = raw.withTypeProvider<TypeBoxTypeProvider>();

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseJsonStrict(typeof body === 'string' ? body : body.toString('utf8')));
    } catch (e) {
      done(e as NeaError);
    }
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: o.title, version: '1', description: o.description },
      components: {
        securitySchemes: o.securitySchemes
          ? Object.fromEntries(Object.entries(o.securitySchemes).map(([k, description]) => [k, { type: 'http' as const, scheme: 'bearer', description }]))
          : { bearer: { type: 'http', scheme: 'bearer' } },
      },
      security: [{ [Object.keys(o.securitySchemes ?? { bearer: '' })[0]!]: [] }],
    },
  });
  await app.register(rateLimit, {
    max: o.rateLimit?.max ?? 600,
    timeWindow: o.rateLimit?.windowMs ?? 60_000,
    keyGenerator: (req) => req.ip,
    errorResponseBuilder: (_req, ctx) => new NeaError('API_RATE_LIMITED', `more than ${ctx.max} requests from this address in the window; retry in ${ctx.after}`),
  });

  app.setErrorHandler((err, req, reply) => {
    const { problem: p, internal } = toProblem(err, o.server);
    if (internal) o.log.error('API request failed', { method: req.method, url: req.routeOptions.url ?? req.url, error: err instanceof Error ? err.message : String(err) });
    void reply.code(p.status).type(PROBLEM_TYPE).send(p);
  });
  app.setNotFoundHandler((req, reply) => {
    const p = toProblem(new NeaError('API_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0] ?? ''}`)).problem;
    void reply.code(404).type(PROBLEM_TYPE).send(p);
  });
  return app;
}
