/** Hand-made bench results for the report and chart tests. */
import { emptyMetrics, type BenchReport, type Metrics, type SystemResult } from './metrics.js';

export function system(name: string, m: Partial<Metrics>, opts: Partial<SystemResult> = {}): SystemResult {
  const metrics = { ...emptyMetrics(), ...m };
  return {
    name, layer: 'L2', kernel: false, error: null, note: null, ...metrics,
    spread: {}, processes: [], runs: [{ rep: 1, ...metrics, details: {
      tcp1_retransmits: null, tcp4_retransmits: null, udp1400_offered_pps: null, udp64_offered_pps: null,
      udp1400_search: [], udp64_search: [], ping_idle_replies: null, ping_idle_loss_pct: null, ping_load_replies: null, ping_load_loss_pct: null, cpu_s_by_test: null, errors: [],
    } }],
    ...opts,
  };
}

export function report(systems: SystemResult[]): BenchReport {
  return {
    date: '2030-01-02T03:04:05.000Z',
    machine: { hostname: 'lab', cpuModel: 'Test CPU', cpus: 2, kernel: '6.1.0', memoryMiB: 4096, node: 'v20.0.0' },
    wanMtu: 1500,
    options: { durationS: 10, reps: 2, quick: false, command: 'nea bench' },
    systems,
  };
}
