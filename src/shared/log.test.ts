import { describe, expect, it } from 'vitest';
import { createLogger, formatFields } from './log.js';

describe('logger', () => {
  it('writes one line per event with quoted fields and the component', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'info', sink: (l) => lines.push(l), now: () => 0 }).child('tunnel');
    log.debug('hidden');
    log.warn('peer silent', { peer: 'ab12', reason: 'no handshake', n: 3 });
    expect(lines).toEqual(['1970-01-01T00:00:00.000Z WARN  peer silent component=tunnel peer=ab12 reason="no handshake" n=3']);
  });

  it('quotes empty values and values with = or quotes', () => {
    expect(formatFields({ a: '', b: 'x=y', c: 'q"', d: undefined })).toBe(' a="" b="x=y" c="q\\""');
  });
});
