/**
 * docs/api.md, rendered from the OpenAPI document the API serves (so the
 * reference cannot drift from the schemas: doc.test.ts compares the file
 * with this rendering; `UPDATE_DOCS=1 npx vitest run src/appliance/api/doc.test.ts`
 * rewrites it). Pure.
 */

interface Schema {
  type?: string; anyOf?: Schema[]; const?: unknown; enum?: unknown[]; pattern?: string; minLength?: number; maxLength?: number;
  minimum?: number; maximum?: number; items?: Schema; minItems?: number; maxItems?: number; uniqueItems?: boolean;
  properties?: Record<string, Schema>; required?: string[]; description?: string; additionalProperties?: boolean | Schema; nullable?: boolean;
}
interface Param { in: string; name: string; required?: boolean; schema: Schema; description?: string }
interface Operation {
  summary?: string; tags?: string[]; security?: unknown[]; parameters?: Param[];
  requestBody?: { content: Record<string, { schema: Schema }> };
  responses?: Record<string, { description?: string; content?: Record<string, { schema: Schema }> }>;
}
export interface OpenApiDoc { info: { title: string }; paths: Record<string, Record<string, Operation>> }

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

function typeOf(s: Schema): string {
  if (s.nullable) return `${typeOf({ ...s, nullable: false })} \\| null`;
  if (s.const !== undefined) return `\`${JSON.stringify(s.const)}\``;
  if (s.enum) return s.enum.map((e) => `\`${JSON.stringify(e)}\``).join(' \\| ');
  if (s.anyOf) return s.anyOf.map(typeOf).join(' \\| ');
  if (s.type === 'array') return `${s.items ? typeOf(s.items) : 'any'}[]`;
  if (s.type === 'object' && !s.properties && s.additionalProperties && typeof s.additionalProperties === 'object') return `map of ${typeOf(s.additionalProperties)}`;
  return s.type ?? 'any';
}

function limits(s: Schema): string {
  const out: string[] = [];
  if (s.pattern !== undefined) out.push(`pattern \`${s.pattern.replace(/\|/g, '\\|')}\``);
  if (s.minimum !== undefined || s.maximum !== undefined) out.push(`${s.minimum ?? ''}..${s.maximum ?? ''}`);
  if (s.minLength !== undefined || s.maxLength !== undefined) out.push(`length ${s.minLength ?? 0}..${s.maxLength ?? ''}`);
  if (s.minItems !== undefined || s.maxItems !== undefined) out.push(`${s.minItems ?? 0}..${s.maxItems ?? ''} items`);
  if (s.uniqueItems) out.push('unique');
  if (s.type === 'array' && s.items) out.push(...limits(s.items).split('; ').filter(Boolean).map((x) => `each: ${x}`));
  return out.join('; ');
}

/** Rows `| field | type | required | notes |` of an object schema, nested objects flattened with dots. */
function fields(s: Schema, prefix = ''): string[] {
  const rows: string[] = [];
  for (const [k, v] of Object.entries(s.properties ?? {})) {
    const name = `${prefix}${k}`;
    const req = (s.required ?? []).includes(k) ? 'yes' : 'no';
    const notes = [v.description, limits(v)].filter((x) => x !== undefined && x !== '').join('; ');
    const isObj = v.type === 'object' && v.properties !== undefined;
    rows.push(`| \`${name}\` | ${isObj ? `object${v.nullable ? ' \\| null' : ''}` : typeOf(v).replace(/\{[^}]*\}/g, 'object')} | ${req} | ${notes} |`);
    if (isObj) rows.push(...fields(v, `${name}.`));
    else if (v.anyOf?.every((x) => x.type === 'object')) v.anyOf.forEach((alt, i) => { rows.push(...fields(alt, `${name}(${i + 1}).`)); });
    else if (v.type === 'array' && v.items?.type === 'object') rows.push(...fields(v.items, `${name}[].`));
  }
  return rows;
}

function schemaBlock(s: Schema): string[] {
  const head = ['| field | type | required | notes |', '|---|---|---|---|'];
  if (s.anyOf?.every((x) => x.type === 'object')) {
    return s.anyOf.flatMap((alt, i) => [`One of (${i + 1}):`, '', ...head, ...fields(alt), '']);
  }
  if (s.type === 'object' && s.properties) return [...head, ...fields(s), ''];
  return [`\`${typeOf(s)}\``, ''];
}

/** The whole docs/api.md. */
export function renderApiDoc(doc: OpenApiDoc): string {
  const out: string[] = [INTRO, '## Routes', ''];
  const ops = Object.entries(doc.paths).flatMap(([path, m]) => Object.entries(m).map(([method, op]) => ({ path, method: method.toUpperCase(), op })));
  out.push('| method | path | what | auth |', '|---|---|---|---|');
  for (const { path, method, op } of ops) out.push(`| ${method} | \`${path}\` | ${op.summary ?? ''} | ${op.security && op.security.length === 0 ? 'none' : 'bearer'} |`);
  out.push('');
  for (const { path, method, op } of ops) {
    out.push(`### ${method} ${path}`, '', `${op.summary ?? ''}.`, '');
    const params = op.parameters ?? [];
    if (params.length > 0) {
      out.push('| parameter | in | type | notes |', '|---|---|---|---|');
      for (const p of params) out.push(`| \`${p.name}\` | ${p.in} | ${typeOf(p.schema)} | ${[p.schema.description ?? p.description, limits(p.schema)].filter((x) => x !== undefined && x !== '').join('; ')} |`);
      out.push('');
    }
    const body = op.requestBody?.content['application/json']?.schema;
    if (body) out.push('Request body:', '', ...schemaBlock(body));
    const responses = Object.entries(op.responses ?? {});
    const ok = responses.filter(([code]) => code.startsWith('2'));
    for (const [code, r] of ok) {
      const content = Object.entries(r.content ?? {})[0];
      out.push(`Answer ${code}${content ? ` (\`${content[0]}\`)` : ''}:`, '');
      if (content) out.push(...schemaBlock(content[1].schema));
      else out.push('No body.', '');
    }
    out.push('Errors: `application/problem+json` (4xx, 5xx).', '');
  }
  return out.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd() + '\n';
}
