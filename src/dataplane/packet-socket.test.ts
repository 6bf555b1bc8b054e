import { describe, expect, it } from 'vitest';
import { arpRequest } from '../protocol/ethernet.js';
import { TPID_8021AD, insertTag, tagWord } from '../protocol/vlan.js';
import { SystemError, ValidationError } from '../shared/errors.js';
import { createFakePacketPair } from './fake-packet-socket.js';
import { openPacketSocket, packetErrorCode } from './packet-socket.js';

const tick = async (): Promise<void> => { for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r)); };
const arp = arpRequest('02:00:00:00:00:01', '10.0.0.1', '10.0.0.2');

describe('packet socket: errors and options', () => {
  it.each([
    ['open', 'ENODEV', 'PACKET_NO_DEVICE'],
    ['open', 'ENXIO', 'PACKET_NO_DEVICE'],
    ['open', 'EPERM', 'PACKET_NO_PERMISSION'],
    ['open', 'EINVAL', 'PACKET_OPEN_FAILED'],
    ['send', 'ENETDOWN', 'PACKET_LINK_DOWN'],
    ['send', 'EMSGSIZE', 'PACKET_SEND_FAILED'],
    ['send', 'EBADF', 'PACKET_CLOSED'],
    ['read', 'EBADF', 'PACKET_READ_FAILED'],
  ] as const)('%s %s -> %s', (op, errno, code) => {
    expect(packetErrorCode(op, errno)).toBe(code);
  });

  it('refuses a bad interface name, receive buffer or filter before any system call', () => {
    expect(() => openPacketSocket('a/b')).toThrow(SystemError);
    expect(() => openPacketSocket('a/b')).toThrow(/not a valid interface name/);
    expect(() => openPacketSocket('eth0', { rcvbuf: -1 })).toThrow(ValidationError);
    expect(() => openPacketSocket('eth0', { filter: new Uint8Array(12) })).toThrow(/whole 8-byte BPF instructions/);
  });
});

describe('in-memory packet socket: the kernel\'s VLAN behaviour', () => {
  it('puts tags on the wire, and hands the receiver the frame without its outer tag and the tag apart', async () => {
    const [a, b] = createFakePacketPair();
    const got: [string, string][] = [];
    b.onBatch((batch) => { for (let i = 0; i < batch.count; i++) got.push([batch.tags[i]!.toString(16), batch.frame(i).subarray(12, 14).toString('hex')]); });
    a.send(arp, tagWord(110));
    a.send(insertTag(arp, tagWord(210)), tagWord(110, TPID_8021AD)); // double-tagged: the inner tag stays in the bytes
    a.send(arp);
    await tick();
    expect(got).toEqual([['8100006e', '0806'], ['88a8006e', '8100'], ['0', '0806']]);
    expect(a.wire.map((f) => f.length)).toEqual([64, 68, 60]);
  });

  it('counts refused sends and overflowing receive queues', async () => {
    const [a, b] = createFakePacketPair({}, { queueLength: 2 });
    a.setWritable(false);
    expect(a.send(arp)).toBe(false);
    a.setWritable(true);
    const f = Buffer.concat([Buffer.from(arp), Buffer.from(arp), Buffer.from(arp)]);
    expect(a.sendBatch(f, new Uint32Array([0, 60, 120]), new Uint32Array([60, 60, 60]), 3, 0)).toBe(3);
    b.onBatch(() => undefined);
    await tick();
    expect(a.counters()).toMatchObject({ txFrames: 3, txDrops: 1 });
    expect(b.counters()).toMatchObject({ rxFrames: 2, rxDrops: 1 });
  });
});
