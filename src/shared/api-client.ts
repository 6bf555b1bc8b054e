/**
 * A client of the management API over HTTPS with a pinned certificate.
 *
 * Pinning: the TLS connection is made first (chain not verified: the
 * certificate is self-signed), its SHA-256 fingerprint compared with the
 * pinned one, and only then is the HTTP request (with the bearer token)
 * written on it. A mismatch ends the connection before a byte of the
 * request is sent (API_PIN_MISMATCH).
 *
 * Errors: an answer with a problem body becomes an {@link ApiError}
 * carrying the appliance's code and status; a failed connection is
 * API_UNREACHABLE.
 */
import { request as httpRequest } from 'node:http';
import { connect, type TLSSocket } from 'node:tls';
import { ERROR_CODES, type ErrorCode } from './error-codes.js';
import { NeaError } from './errors.js';
import { normalizeFingerprint } from './tls.js';

export interface ApiTarget {
  /** `https://HOST:PORT` (a path prefix is not used). */
  url: string;
  /** SHA-256 fingerprint of the appliance's certificate (hex, colons allowed). */
  fingerprint: string;
  /** Bearer token; absent for unauthenticated routes. */
  token?: string;
  /** Timeout of the whole request in ms; default 10000. */
  timeoutMs?: number;
}

/** The appliance answered with a problem. */
export class ApiError extends NeaError {
  constructor(code: ErrorCode, readonly status: number, message: string) {
    super(code, message);
  }
}

export interface ApiResponse<T> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: T;
}

function parseUrl(text: string): URL {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new NeaError('USAGE', `"${text}" is not a URL (https://HOST:PORT)`);
  }
  if (u.protocol !== 'https:') throw new NeaError('USAGE', `"${text}": the management API is HTTPS only`);
  return u;
}

function connectPinned(u: URL, fingerprint: string, timeoutMs: number): Promise<TLSSocket> {
  const want = normalizeFingerprint(fingerprint);
  return new Promise((resolve, reject) => {
    const host = u.hostname.replace(/^\[|\]$/g, '');
    const s = connect({ host, port: Number(u.port || 443), rejectUnauthorized: false, ALPNProtocols: ['http/1.1'], ...(/^[\d.:]+$/.test(host) ? {} : { servername: host }) });
    const timer = setTimeout(() => { s.destroy(); reject(new NeaError('API_UNREACHABLE', `${u.origin}: no TLS handshake within ${timeoutMs} ms`)); }, timeoutMs);
    s.once('secureConnect', () => {
      clearTimeout(timer);
      const raw = s.getPeerCertificate().raw as Buffer | undefined;
      const got = s.getPeerCertificate().fingerprint256;
      if (raw === undefined || normalizeFingerprint(got) !== want) {
        s.destroy();
        reject(new NeaError('API_PIN_MISMATCH', `${u.origin}: certificate fingerprint ${normalizeFingerprint(got)} is not the pinned ${want}; nothing was sent`));
        return;
      }
      resolve(s);
    });
    s.once('error', (e: NodeJS.ErrnoException) => { clearTimeout(timer); reject(new NeaError('API_UNREACHABLE', `${u.origin}: ${e.code ?? e.message}`, { cause: e })); });
  });
}

/** One JSON request. Resolves for 2xx; throws ApiError for a problem answer. */
export async function apiRequest<T>(t: ApiTarget, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse<T>> {
  const u = parseUrl(t.url);
  const timeoutMs = t.timeoutMs ?? 10_000;
  const socket = await connectPinned(u, t.fingerprint, timeoutMs);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      method, path, host: u.hostname, createConnection: () => socket, timeout: timeoutMs,
      headers: {
        accept: 'application/json', ...headers,
        ...(t.token !== undefined && { authorization: `Bearer ${t.token}` }),
        ...(payload && { 'content-type': 'application/json', 'content-length': String(payload.length) }),
      },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        socket.destroy();
        const text = Buffer.concat(chunks).toString('utf8');
        const status = res.statusCode ?? 0;
        let parsed: unknown = text;
        try { parsed = text === '' ? undefined : JSON.parse(text); } catch { /* text bodies (/metrics) stay text */ }
        if (status >= 200 && status < 300) {
          resolve({ status, headers: res.headers, body: parsed as T });
          return;
        }
        const p = parsed as { code?: string; detail?: string } | undefined;
        const code = typeof p?.code === 'string' && p.code in ERROR_CODES ? p.code as ErrorCode : 'API_INTERNAL';
        reject(new ApiError(code, status, `${u.origin}${path}: ${status} ${code}: ${p?.detail ?? text.slice(0, 200)}`));
      });
    });
    req.on('timeout', () => { req.destroy(new Error(`no answer within ${timeoutMs} ms`)); });
    req.on('error', (e) => { socket.destroy(); reject(new NeaError('API_UNREACHABLE', `${u.origin}${path}: ${e.message}`, { cause: e })); });
    req.end(payload);
  });
}
