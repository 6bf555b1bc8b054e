/**
 * Every error the API answers is `application/problem+json` (RFC 9457) with
 * a code from the one registry (src/shared/error-codes.ts). Input the API
 * refuses is a 4xx; only a failure of the appliance itself is a 5xx.
 */
import type { FastifyError } from 'fastify';
import type { Problem } from '../../protocol/appliance-api.js';
import { ERROR_CODES, type ErrorCode } from '../../shared/error-codes.js';
import { NeaError } from '../../shared/errors.js';

export const PROBLEM_TYPE = 'application/problem+json';

export function problem(code: ErrorCode, detail: string, status: number = ERROR_CODES[code].status): Problem {
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

/** Maps anything thrown while handling a request to a problem. */
export function toProblem(err: unknown): { problem: Problem; internal: boolean } {
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
  return { problem: problem('API_INTERNAL', 'the appliance failed while handling the request; see its log'), internal: true };
}
