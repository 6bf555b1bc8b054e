import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderApiDoc, type OpenApiDoc } from './doc.js';
import { testApi } from './testkit.js';

const FILE = new URL('../../../docs/api.md', import.meta.url);

describe('docs/api.md', () => {
  it('is the rendering of the route schemas (UPDATE_DOCS=1 rewrites it)', async () => {
    const t = await testApi();
    await t.app.ready();
    const text = renderApiDoc(t.app.swagger() as unknown as OpenApiDoc);
    if (process.env.UPDATE_DOCS === '1') writeFileSync(FILE, text);
    expect(readFileSync(FILE, 'utf8')).toBe(text);
    // Every route is documented.
    for (const path of Object.keys((t.app.swagger() as unknown as OpenApiDoc).paths)) expect(text).toContain(`\`${path}\``);
  });
});
