import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../shared/log.js';
import { buildControlApi } from './api.js';
import { renderControlApiDoc, type OpenApiDoc } from './api-doc.js';
import { makeKit } from './testkit.js';

const FILE = new URL('../../docs/control-api.md', import.meta.url);

describe('docs/control-api.md', () => {
  it('is the rendering of the route schemas (UPDATE_DOCS=1 rewrites it)', async () => {
    const app = await buildControlApi({ cp: makeKit().cp, log: createLogger({ sink: () => undefined }) });
    await app.ready();
    const doc = app.swagger() as unknown as OpenApiDoc;
    const text = renderControlApiDoc(doc);
    if (process.env.UPDATE_DOCS === '1') writeFileSync(FILE, text);
    expect(readFileSync(FILE, 'utf8')).toBe(text);
    for (const path of Object.keys(doc.paths)) expect(text).toContain(`\`${path}\``);
  });
});
