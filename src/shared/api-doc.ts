/**
 * An API reference in Markdown, rendered from the OpenAPI document an API
 * serves, so that the reference cannot drift from the route schemas: each
 * API's doc test compares its file with this rendering (docs/api.md for the
 * appliance's, docs/control-api.md for the control plane's). Pure.
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

/** Who may call: `none`, the route's security schemes, or `bearer` (the document's default). */
function authOf(op: Operation): string {
  if (!op.security) return 'bearer';
  if (op.security.length === 0) return 'none';
  return op.security.flatMap((s) => Object.keys(s as Record<string, unknown>)).join(', ');
}

/** A whole API reference: `intro` (Markdown), then the routes table, then each route with its parameters, body and answers. */
export function renderApiDoc(doc: OpenApiDoc, intro: string): string {
  const out: string[] = [intro, '## Routes', ''];
  const ops = Object.entries(doc.paths).flatMap(([path, m]) => Object.entries(m).map(([method, op]) => ({ path, method: method.toUpperCase(), op })));
  out.push('| method | path | what | auth |', '|---|---|---|---|');
  for (const { path, method, op } of ops) out.push(`| ${method} | \`${path}\` | ${op.summary ?? ''} | ${authOf(op)} |`);
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
