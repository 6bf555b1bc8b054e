/**
 * How the control plane talks to a tenant's SP appliance: only through its
 * management API (docs/api.md), over HTTPS pinned to the certificate
 * fingerprint registered for the tenant, with the registered admin token.
 *
 * {@link ApplianceApi} is the narrow surface the control plane uses; the
 * real one ({@link httpAppliance}) retries while the appliance restarts to
 * apply a change (503 API_RESTARTING) or is briefly unreachable, and turns
 * every failure into CONTROL_APPLIANCE_FAILED naming the appliance, the
 * request and the appliance's own error. {@link FakeAppliance} keeps the
 * desired state in memory for unit tests.
 */
import type { PairingTokenCreated, PublicRuleBody, Routing, SegmentBody, StatusView } from '../protocol/appliance-api.js';
import { ApiError, apiRequest, type ApiTarget } from '../shared/api-client.js';
import { NeaError } from '../shared/errors.js';

export interface ApplianceApi {
  putSegment(id: number, body: SegmentBody): Promise<void>;
  deleteSegment(id: number): Promise<void>;
  putRule(name: string, body: PublicRuleBody): Promise<void>;
  deleteRule(name: string): Promise<void>;
  putRouting(body: Routing): Promise<void>;
  createPairingToken(body: { segments: number[]; ttlSeconds: number; endpoint?: string; name?: string }): Promise<PairingTokenCreated>;
  status(): Promise<StatusView>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The SP appliance at `target`; `retryMs` bounds the wait across restarts (default 30 s). */
export function httpAppliance(target: ApiTarget, retryMs = 30_000): ApplianceApi {
  const call = async <T>(method: string, path: string, body?: unknown, okCodes: readonly string[] = []): Promise<T | undefined> => {
    const deadline = Date.now() + retryMs;
    for (let delay = 200; ; delay = Math.min(delay * 2, 2000)) {
      try {
        return (await apiRequest<T>(target, method, path, body)).body;
      } catch (e) {
        if (e instanceof NeaError && okCodes.includes(e.code)) return undefined;
        const transient = e instanceof NeaError && (e.code === 'API_RESTARTING' || e.code === 'API_UNREACHABLE' || e.code === 'API_RATE_LIMITED');
        if (transient && Date.now() + delay < deadline) {
          await sleep(delay);
          continue;
        }
        const detail = e instanceof ApiError ? e.message : e instanceof NeaError ? e.message : String(e);
        throw new NeaError('CONTROL_APPLIANCE_FAILED', `SP appliance ${target.url}: ${method} ${path}: ${detail}`, { cause: e });
      }
    }
  };
  return {
    putSegment: async (id, body) => { await call('PUT', `/v1/segments/${id}`, body); },
    deleteSegment: async (id) => { await call('DELETE', `/v1/segments/${id}`, undefined, ['API_NOT_FOUND']); },
    putRule: async (name, body) => { await call('PUT', `/v1/public-rules/${name}`, body); },
    deleteRule: async (name) => { await call('DELETE', `/v1/public-rules/${name}`, undefined, ['API_NOT_FOUND']); },
    putRouting: async (body) => { await call('PUT', '/v1/routing', body); },
    createPairingToken: async (body) => (await call<PairingTokenCreated>('POST', '/v1/pairing-tokens', body))!,
    status: async () => (await call<StatusView>('GET', '/v1/status'))!,
  };
}

/** An SP appliance in memory: its desired segments, rules and routing; failures injectable. */
export class FakeAppliance implements ApplianceApi {
  readonly segments = new Map<number, SegmentBody>();
  readonly rules = new Map<string, PublicRuleBody>();
  routing: Routing = { betweenSegments: false };
  readonly calls: string[] = [];
  /** `METHOD path` → failures left to inject. */
  readonly failures = new Map<string, number>();

  private hit(what: string): void {
    this.calls.push(what);
    const n = this.failures.get(what) ?? 0;
    if (n > 0) {
      this.failures.set(what, n - 1);
      throw new NeaError('CONTROL_APPLIANCE_FAILED', `fake appliance: ${what}: refused (injected)`);
    }
  }

  putSegment(id: number, body: SegmentBody): Promise<void> {
    this.hit(`PUT /v1/segments/${id}`);
    this.segments.set(id, structuredClone(body));
    return Promise.resolve();
  }

  deleteSegment(id: number): Promise<void> {
    this.hit(`DELETE /v1/segments/${id}`);
    this.segments.delete(id);
    return Promise.resolve();
  }

  putRule(name: string, body: PublicRuleBody): Promise<void> {
    this.hit(`PUT /v1/public-rules/${name}`);
    if (!this.segments.has(body.segment)) return Promise.reject(new NeaError('CONTROL_APPLIANCE_FAILED', `fake appliance: rule ${name}: segment ${body.segment} does not exist`));
    this.rules.set(name, structuredClone(body));
    return Promise.resolve();
  }

  deleteRule(name: string): Promise<void> {
    this.hit(`DELETE /v1/public-rules/${name}`);
    this.rules.delete(name);
    return Promise.resolve();
  }

  putRouting(body: Routing): Promise<void> {
    this.hit('PUT /v1/routing');
    this.routing = { ...body };
    return Promise.resolve();
  }

  createPairingToken(body: { segments: number[]; ttlSeconds: number }): Promise<PairingTokenCreated> {
    this.hit('POST /v1/pairing-tokens');
    const t = new Date();
    return Promise.resolve({
      id: 'fake', segments: body.segments, createdAt: t.toISOString(), expiresAt: new Date(t.getTime() + body.ttlSeconds * 1000).toISOString(),
      state: 'unused', token: `neapair1.fake.${body.segments.join('-')}`,
    });
  }

  status(): Promise<StatusView> {
    this.hit('GET /v1/status');
    return Promise.resolve({
      name: 'fake-sp', role: 'sp', publicKey: 'fake', version: 1, listenPort: 51820, peers: [],
      segments: [...this.segments].map(([id, s]) => ({ id, name: s.name, mode: s.mode, internet: s.internet, toTunnel: 0, fromTunnel: 0, drops: {} })),
      publicRules: [], routing: this.routing, unauthenticatedDrops: {}, reconcileErrors: 0, lastReconcileError: null,
    });
  }

  /** A snapshot to compare states with. */
  snapshot(): { segments: [number, SegmentBody][]; rules: [string, PublicRuleBody][]; routing: Routing } {
    return {
      segments: [...this.segments].sort((a, b) => a[0] - b[0]),
      rules: [...this.rules].sort((a, b) => a[0].localeCompare(b[0])),
      routing: { ...this.routing },
    };
  }
}
