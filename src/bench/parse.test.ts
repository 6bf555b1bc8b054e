import { describe, expect, it } from 'vitest';
import { ToolError, descendants, parseIperfTcp, parseIperfUdp, parsePing, parseProcStat, parseVmHwmKiB, treeCpuTicks, type ProcStat } from './parse.js';

// Trimmed from real `iperf3 -J` 3.12 output on this machine.
const TCP = JSON.stringify({
  start: { test_start: { protocol: 'TCP', num_streams: 4, blksize: 131072, duration: 2 } },
  intervals: [],
  end: {
    streams: [],
    sum_sent: { start: 0, end: 2.00008, seconds: 2.00008, bytes: 2987130880, bits_per_second: 11948567159.3, retransmits: 13, sender: true },
    sum_received: { start: 0, end: 2.001073, seconds: 2.001073, bytes: 2987130774, bits_per_second: 11942162145.3, sender: true },
    cpu_utilization_percent: { host_total: 91.8 },
  },
});

const UDP = JSON.stringify({
  start: { test_start: { protocol: 'UDP', num_streams: 1, blksize: 64, omit: 0, duration: 1, target_bitrate: 0 } },
  intervals: [],
  end: {
    streams: [],
    sum: { start: 0, end: 1.000055, seconds: 1.000055, bytes: 20371840, bits_per_second: 162971949.5, jitter_ms: 0.0025, lost_packets: 3784, packets: 318310, lost_percent: 1.19, sender: true },
    sum_sent: { start: 0, end: 1.000017, seconds: 1.000017, bytes: 20371840, bits_per_second: 162971949.5, jitter_ms: 0, lost_packets: 0, packets: 318310, lost_percent: 0, sender: true },
    sum_received: { start: 0, end: 1.000055, seconds: 1.000055, bytes: 20129664, bits_per_second: 161028455.4, jitter_ms: 0.0025, lost_packets: 3784, packets: 318310, lost_percent: 1.19, sender: false },
  },
});

describe('parseIperfTcp', () => {
  it('takes the receiver\'s rate over all streams, in Mbit/s', () => {
    const r = parseIperfTcp(TCP);
    expect(r.mbps).toBeCloseTo(11942.162, 3);
    expect(r.retransmits).toBe(13);
    expect(r.seconds).toBeCloseTo(2.001, 3);
  });

  it('turns iperf3\'s own error into a ToolError with its message', () => {
    const text = JSON.stringify({ start: {}, intervals: [], end: {}, error: 'unable to connect to server: Connection refused' });
    expect(() => parseIperfTcp(text)).toThrow(ToolError);
    expect(() => parseIperfTcp(text)).toThrow('iperf3: unable to connect to server: Connection refused');
  });

  it('says when the output is not JSON', () => {
    expect(() => parseIperfTcp('iperf3: error - the server is busy running a test. try again later\n')).toThrow(/not JSON \(iperf3: error - the server is busy/);
    expect(() => parseIperfTcp('')).toThrow(/not JSON \(empty\)/);
  });

  it('refuses a UDP result', () => {
    const noRx = JSON.stringify({ start: {}, end: { sum: { seconds: 1, bits_per_second: 1 } } });
    expect(() => parseIperfTcp(noRx)).toThrow(/without end.sum_received/);
  });
});

describe('parseIperfUdp', () => {
  it('computes offered and delivered packet rates and loss from both sides', () => {
    const r = parseIperfUdp(UDP);
    expect(r.datagramBytes).toBe(64);
    expect(r.sent).toBe(318310);
    expect(r.lost).toBe(3784);
    expect(r.delivered).toBe(318310 - 3784);
    expect(r.offeredPps).toBeCloseTo(318310 / 1.000017, 3);
    expect(r.deliveredPps).toBeCloseTo((318310 - 3784) / 1.000055, 3);
    expect(r.lossPct).toBeCloseTo((100 * 3784) / 318310, 6);
  });

  it('reads the older single `sum` form', () => {
    const old = JSON.parse(UDP) as { end: Record<string, unknown> };
    delete old.end.sum_sent;
    delete old.end.sum_received;
    const r = parseIperfUdp(JSON.stringify(old));
    expect(r.lost).toBe(3784);
    expect(r.sent).toBe(318310);
  });

  it('clamps negative loss (reordering) to zero', () => {
    const d = JSON.parse(UDP) as { end: { sum_received: { lost_packets: number } } };
    d.end.sum_received.lost_packets = -2;
    expect(parseIperfUdp(JSON.stringify(d)).lossPct).toBe(0);
  });

  it('refuses a TCP result', () => {
    expect(() => parseIperfUdp(TCP)).toThrow(/without lost_packets/);
  });
});

const PING = `PING 198.51.100.2 (198.51.100.2) 56(84) bytes of data.
64 bytes from 198.51.100.2: icmp_seq=1 ttl=64 time=0.172 ms
64 bytes from 198.51.100.2: icmp_seq=2 ttl=64 time=0.030 ms
64 bytes from 198.51.100.2: icmp_seq=2 ttl=64 time=0.031 ms (DUP!)
64 bytes from 198.51.100.2: icmp_seq=4 ttl=64 time=1.50 ms

--- 198.51.100.2 ping statistics ---
4 packets transmitted, 3 received, +1 duplicates, 25% packet loss, time 32ms
rtt min/avg/max/mdev = 0.030/0.567/1.500/0.063 ms
`;

describe('parsePing', () => {
  it('collects each reply\'s RTT, without duplicates, and the loss', () => {
    const p = parsePing(PING);
    expect(p.rttsMs).toEqual([0.172, 0.03, 1.5]);
    expect(p.transmitted).toBe(4);
    expect(p.received).toBe(3);
    expect(p.lossPct).toBe(25);
    expect(p.avgMs).toBeCloseTo(0.5673, 4);
    expect(p.p99Ms).toBe(1.5);
  });

  it('works on output cut short (no summary): sent = highest sequence seen', () => {
    const cut = PING.split('\n').slice(0, 5).join('\n');
    const p = parsePing(cut);
    expect(p.transmitted).toBe(4);
    expect(p.received).toBe(3);
  });

  it('reads whole-millisecond times', () => {
    expect(parsePing('64 bytes from 10.0.0.1: icmp_seq=1 ttl=64 time=12 ms\n').rttsMs).toEqual([12]);
  });

  it('gives undefined statistics and full loss without replies', () => {
    const p = parsePing('PING x\n\n--- x ping statistics ---\n5 packets transmitted, 0 received, 100% packet loss, time 40ms\n');
    expect(p.received).toBe(0);
    expect(p.avgMs).toBeUndefined();
    expect(p.p99Ms).toBeUndefined();
    expect(p.lossPct).toBe(100);
  });
});

describe('/proc parsers', () => {
  it('reads ppid and CPU times, whatever the command name holds', () => {
    const stat = '4242 (tincd (x) y) S 1 4242 4242 0 -1 4194560 1203 0 0 0 250 130 7 3 20 0 3 0 12345 1000000 500 18446744073709551615';
    expect(parseProcStat(stat)).toEqual({ ppid: 1, utime: 250, stime: 130, cutime: 7, cstime: 3 });
  });

  it('refuses a line without a command name', () => {
    expect(() => parseProcStat('garbage')).toThrow(ToolError);
    expect(() => parseProcStat('1 (x) S')).toThrow(ToolError);
  });

  it('charges a process tree with its live descendants and its reaped children', () => {
    const st = (ppid: number, t: number, c = 0): ProcStat => ({ ppid, utime: t, stime: t, cutime: c, cstime: 0 });
    const stats = new Map<number, ProcStat>([
      [10, st(1, 100, 5)], // the appliance, 5 ticks of children already gone
      [11, st(10, 20)], // a worker process
      [12, st(11, 1)], // its child
      [20, st(1, 999)], // unrelated
    ]);
    expect(descendants(10, stats)).toEqual([10, 11, 12]);
    expect(treeCpuTicks(10, stats)).toBe(200 + 5 + 40 + 2);
    expect(treeCpuTicks(99, stats)).toBe(0);
  });

  it('reads VmHWM in KiB', () => {
    expect(parseVmHwmKiB('Name:\topenvpn\nVmPeak:\t  10000 kB\nVmHWM:\t    9616 kB\nVmRSS:\t 9000 kB\n')).toBe(9616);
    expect(parseVmHwmKiB('Name:\tkthreadd\nState:\tS (sleeping)\n')).toBeUndefined();
  });
});
