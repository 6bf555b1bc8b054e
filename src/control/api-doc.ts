/**
 * docs/control-api.md, rendered from the OpenAPI document the control
 * plane's API serves (so the reference cannot drift from the schemas:
 * api-doc.test.ts compares the file with this rendering;
 * `UPDATE_DOCS=1 npx vitest run src/control/api-doc.test.ts` rewrites it).
 * Pure.
 */
import { renderApiDoc, type OpenApiDoc } from '../shared/api-doc.js';

export type { OpenApiDoc };

const INTRO = `# Control plane API

The SP's control plane (\`nea control run\`, docs/control-plane.md) serves
this API over HTTPS (default \`0.0.0.0:9443\`); the \`nea control ...\`
commands are its client. This reference is generated from the route schemas
(\`src/control/api-doc.ts\`; a test fails when it differs from them). The
OpenAPI 3 document itself is served at \`GET /v1/openapi.json\`.

## Conventions

- **TLS.** The certificate is self-signed, made on first start and kept in
  \`<tls-dir>/tls/\` (default: the database's directory). Clients pin its
  SHA-256 fingerprint; \`nea control run\` writes it, the URL and an admin
  token to \`<db>.client.json\` (0600) for local clients.
- **Authentication.** \`Authorization: Bearer <token>\` on every route but
  \`/v1/health\` and \`/v1/openapi.json\`. Tokens (\`POST /v1/tokens\`) are
  stored as SHA-256 hashes, compared in constant time, revocable at once.
  Missing or unknown token: 401; revoked token: 403.
- **Scopes.** An \`admin\` token is the SP: every route. A \`tenant\` token
  is one tenant's: it reads the plans, reads and changes its own tenant's
  networks, replicas and failover plans, mints its pairing tokens, runs its
  own operations and sees its own jobs and audit entries. A path naming
  another tenant answers 404 \`tenant X does not exist\`, whether X exists
  or not; a route that is the SP's alone (hosts, pools, plan changes,
  tenants, subscriptions, appliances, tokens) answers 403.
- **Bodies.** JSON only (415 otherwise), at most 64 KiB (413). Unknown
  fields, \`__proto__\` and \`constructor.prototype\` are refused (400), never
  dropped. No type coercion: \`"10"\` is not \`10\`. Names in paths: 1-32 of
  a-z, 0-9, \`_\`, \`-\`.
- **Errors.** \`application/problem+json\` (RFC 9457) with \`code\` from the
  registry in docs/errors.md and a \`detail\` that names the field or what is
  in the way. Bad input is always a 4xx; a refused change changes nothing
  (the records are written in one transaction, after the SP appliance took
  its part of the change).
- **PUT** creates (201) or replaces (200) and is idempotent. **DELETE** is
  refused (409) while something still uses the item, naming it.
- **Operations** (\`failover\`, \`failback\`, \`undo-failover\`,
  \`permanent-failover\`) answer 202 with their **job** at once; poll
  \`GET /v1/jobs/{id}\` to follow its steps. A job ends \`succeeded\`,
  \`degraded\`, \`rolled-back\` or \`failed\`. Jobs are persisted step by step
  and resume after a restart. One operation per tenant at a time (409
  \`CONTROL_BUSY\`).
- **Audit.** Every change and every operation is in \`GET /v1/audit\`: who
  (the token's name), when, what, the outcome; so is a change refused for
  its token's scope.
- **Rate limit.** Per client address (default 600 requests a minute): 429
  with \`retry-after\`.
`;

/** The whole docs/control-api.md. */
export function renderControlApiDoc(doc: OpenApiDoc): string {
  return renderApiDoc(doc, INTRO);
}
