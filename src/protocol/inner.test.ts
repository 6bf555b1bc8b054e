import { describe, expect, it } from 'vitest';
import {
  CAP_OFFLOAD, MAX_OFFLOAD_BYTES, capabilityFlags, offloadChunk, readOffloadHeader, writeCapabilities, writeOffloadHeader,
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
    expect(innerKind(p, 0, 16)).toBe('l2-offload');
    expect(innerKind(p, 0, 15)).toBe('bad');
    p[0] = 0x13;
    expect(innerKind(p, 0, 2)).toBe('capabilities');
    expect(innerKind(p, 0, 1)).toBe('bad');
    p[0] = 0x14;
    expect(innerKind(p, 0, 16)).toBe('bad');
  });

  it('round-trips offload fragment headers (32-bit lengths) and refuses inconsistent ones', () => {
    const p = new Uint8Array(64);
    const h: FragmentHeader = { segment: 0, last: false, frameId: 0, frameLength: 0, offset: 0, chunkLength: 0 };
    writeOffloadHeader(p, 0, 4094, 65_535, 65_000, 64_000, 40);
    expect([...p.subarray(0, 16)]).toEqual([0x12, 0, 0x0f, 0xfe, 0xff, 0xff, 0, 40, 0, 0, 0xfd, 0xe8, 0, 0, 0xfa, 0]);
    expect(readOffloadHeader(p, 0, 56, h)).toBe(true);
    expect(h).toEqual({ segment: 4094, last: false, frameId: 65_535, frameLength: 65_000, offset: 64_000, chunkLength: 40 });
    expect(readOffloadHeader(p, 0, 55, h)).toBe(false); // chunk beyond the payload
    writeOffloadHeader(p, 0, 10, 1, 65_000, 64_960, 40);
    expect(readOffloadHeader(p, 0, 56, h)).toBe(true);
    expect(h.last).toBe(true);
    p[1] = 0;
    expect(readOffloadHeader(p, 0, 56, h)).toBe(false); // ends the frame but not marked last
    writeOffloadHeader(p, 0, 10, 1, MAX_OFFLOAD_BYTES + 1, 0, 40);
    expect(readOffloadHeader(p, 0, 56, h)).toBe(false); // too large
    writeOffloadHeader(p, 0, 10, 1, 20, 0, 20);
    expect(readOffloadHeader(p, 0, 56, h)).toBe(false); // smaller than a virtio header and an Ethernet header
    writeOffloadHeader(p, 0, 10, 1, 1000, 990, 40);
    expect(readOffloadHeader(p, 0, 56, h)).toBe(false); // beyond the frame
  });

  it('writes and reads the capabilities message', () => {
    const p = new Uint8Array(4);
    writeCapabilities(p, 1, CAP_OFFLOAD);
    expect([...p]).toEqual([0, 0x13, 1, 0]);
    expect(innerKind(p, 1, 2)).toBe('capabilities');
    expect(capabilityFlags(p, 1) & CAP_OFFLOAD).toBe(CAP_OFFLOAD);
    expect(offloadChunk(1500, 4)).toBe(1424);
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
