import { describe, expect, it } from 'vitest';
import {
  fragmentChunk, innerKind, innerSegment, l2FrameLength, maxInnerPayload, maxWholeFrame, readFragmentHeader,
  writeFragmentHeader, writeL2Header, type FragmentHeader,
} from './inner.js';

describe('inner payload', () => {
  it('classifies payloads by their first byte', () => {
    const p = new Uint8Array(64);
    expect(innerKind(p, 0, 0)).toBe('keepalive');
    p[0] = 0x45;
    expect(innerKind(p, 0, 20)).toBe('ip');
    p[0] = 0x60;
    expect(innerKind(p, 0, 40)).toBe('ip');
    p[0] = 0x10;
    expect(innerKind(p, 0, 6)).toBe('l2');
    expect(innerKind(p, 0, 5)).toBe('bad');
    p[0] = 0x11;
    expect(innerKind(p, 0, 12)).toBe('l2-fragment');
    p[0] = 0x00;
    expect(innerKind(p, 0, 16)).toBe('bad');
    p[0] = 0x12;
    expect(innerKind(p, 0, 16)).toBe('bad');
  });

  it('writes and reads an L2 header, ignoring padding', () => {
    const p = new Uint8Array(96);
    writeL2Header(p, 16, 4094, 60);
    expect([...p.subarray(16, 22)]).toEqual([0x10, 0, 0x0f, 0xfe, 0, 60]);
    expect(innerSegment(p, 16)).toBe(4094);
    expect(l2FrameLength(p, 16, 66)).toBe(60);
    expect(l2FrameLength(p, 16, 80)).toBe(60); // padded
    expect(l2FrameLength(p, 16, 65)).toBe(-1); // declared length beyond the payload
    writeL2Header(p, 0, 1, 13);
    expect(l2FrameLength(p, 0, 96)).toBe(-1); // shorter than an Ethernet header
  });

  it('round-trips fragment headers and refuses inconsistent ones', () => {
    const p = new Uint8Array(64);
    const h: FragmentHeader = { segment: 10, last: false, frameId: 513, frameLength: 1514, offset: 0, chunkLength: 40 };
    writeFragmentHeader(p, 0, h);
    expect(readFragmentHeader(p, 0, 52)).toEqual(h);
    expect(readFragmentHeader(p, 0, 51)).toBeUndefined(); // chunk beyond the payload
    writeFragmentHeader(p, 0, { ...h, last: true });
    expect(readFragmentHeader(p, 0, 52)).toBeUndefined(); // "last" but does not end the frame
    writeFragmentHeader(p, 0, { ...h, offset: 1474, last: true });
    expect(readFragmentHeader(p, 0, 52)).toEqual({ ...h, offset: 1474, last: true });
    writeFragmentHeader(p, 0, { ...h, offset: 1500 });
    expect(readFragmentHeader(p, 0, 52)).toBeUndefined(); // beyond the frame
    writeFragmentHeader(p, 0, { ...h, chunkLength: 0 });
    expect(readFragmentHeader(p, 0, 52)).toBeUndefined();
  });

  it.each([
    [1500, 4, 1440, 1434, 1428],
    [1500, 6, 1408, 1402, 1396],
    [1420, 4, 1360, 1354, 1348],
    [9000, 4, 8928, 8922, 8916],
  ] as const)('on a %i-byte IPv%i WAN: payload %i, whole frame %i, chunk %i', (mtu, v, payload, whole, chunk) => {
    expect(maxInnerPayload(mtu, v)).toBe(payload);
    expect(maxWholeFrame(mtu, v)).toBe(whole);
    expect(fragmentChunk(mtu, v)).toBe(chunk);
    // The datagram of a full payload fits the path exactly or below.
    expect(payload + (v === 4 ? 60 : 80)).toBeLessThanOrEqual(mtu);
  });
});
