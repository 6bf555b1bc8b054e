/**
 * docs/api.md, rendered from the OpenAPI document the API serves (so the
 * reference cannot drift from the schemas: doc.test.ts compares the file
 * with this rendering; `UPDATE_DOCS=1 npx vitest run src/appliance/api/doc.test.ts`
 * rewrites it). Pure.
 */
import { renderApiDoc as render, type OpenApiDoc } from '../../shared/api-doc.js';

export type { OpenApiDoc };

const INTRO = `# Management API

Every appliance (SP and tenant) serves this API over HTTPS (\`nea appliance
run --api-listen ADDR:PORT\`, default \`0.0.0.0:8443\`). This reference is
generated from the route schemas (\`src/appliance/api/doc.ts\`; a test fails
when it differs from them). The OpenAPI 3 document itself is served at
\`GET /v1/openapi.json\`. How to run, pair and recover appliances:
docs/operations.md.

## Conventions

- **TLS.** The certificate is self-signed, made by the appliance on first
  start and kept in \`<state-dir>/tls/\`. Clients pin its SHA-256
  fingerprint (\`nea status\` prints it; pairing tokens carry it) instead of
  trusting a CA; a client with the wrong pin sends nothing.
- **Authentication.** \`Authorization: Bearer <token>\` on every route but
  \`/v1/health\`, \`/v1/openapi.json\` and \`/v1/pairing/redeem\` (where the
  pairing token is the credential). Tokens are per client
  (\`POST /v1/api-tokens\`), stored as SHA-256 hashes, compared in constant
  time, revocable at once. Scope \`read\` allows GET only. Missing or unknown
  token: 401; revoked token or wrong scope: 403.
- **Bodies.** JSON only (415 otherwise), at most 64 KiB (413). Unknown
  fields, \`__proto__\` and \`constructor.prototype\` are refused (400), never
  dropped. No type coercion: \`"10"\` is not \`10\`.
- **Errors.** \`application/problem+json\` (RFC 9457) with \`code\` from the
  registry in docs/errors.md and a \`detail\` naming the field. Bad input is
  always a 4xx; a refused request changes nothing.
- **Versions and concurrency.** Every change of the persisted state gets the
  next version number. \`GET\` of an item answers \`ETag: "<version that last
  changed it>"\`; \`PUT\`/\`DELETE\` honour \`If-Match\` (412 when someone changed
  the item since) and \`If-None-Match: *\` (create only). \`PUT\` is idempotent:
  the same body twice is one change. \`GET /v1/desired\` has the ETag of the
  whole desired state, for \`PUT /v1/desired\`.
- **Rate limit.** Per client address (default 600 requests a minute, 10
  pairing redemptions a minute): 429 with \`retry-after\`.
- **Applying.** A change is validated (schema, then the config's own rules),
  applied to the running appliance, then persisted (state.json, durably), and
  only then answered 2xx. A change the appliance cannot apply is answered
  with the error and leaves everything as it was.
`;

/** The whole docs/api.md. */
export function renderApiDoc(doc: OpenApiDoc): string {
  return render(doc, INTRO);
}
