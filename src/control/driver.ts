/**
 * Hypervisor drivers: how the control plane powers replicas on and off,
 * reverts them to a restore point, lists them and checks that they answer.
 * One interface, several implementations:
 *
 * - `netns` (src/lab/netns-driver.ts): a replica is a network namespace
 *   with the replica's IP and MAC on its cloud VLAN and a tiny service
 *   answering, so the whole flow runs on one machine (the lab, the tests);
 * - `fake` ({@link FakeDriver}): in memory, for unit tests, with injectable
 *   failures;
 * - a libvirt or vSphere driver would implement the same five calls
 *   (docs/control-plane.md, "Writing a hypervisor driver").
 *
 * Every call is idempotent: powering on a running replica or off a stopped
 * one succeeds without change. The control plane's jobs rely on that to
 * resume after a crash by repeating the step that was interrupted.
 */

/** What a driver needs to know of one replica. */
export interface ReplicaSpec {
  tenant: string;
  /** VM name, unique per tenant. */
  name: string;
  /** Cloud host the replica runs on (a host of the control plane). */
  host: string;
  /** The host's trunk interface and the replica's VLAN on it. */
  trunk: string;
  vlan: number;
  /** Production address with prefix, e.g. `10.1.0.11/24`. */
  address: string;
  /** Production MAC, `aa:bb:cc:dd:ee:ff`. */
  mac: string;
  /** The production network's gateway address (no prefix), e.g. `10.1.0.1`. */
  gateway: string;
  /** Restore point to start from; absent: the latest. */
  restorePoint?: string;
}

export type PowerState = 'on' | 'off';

export interface ReplicaInfo {
  tenant: string;
  name: string;
  host: string;
  power: PowerState;
}

/** A reachability check made from the replica's place in the network. */
export interface ProbeTarget {
  kind: 'icmp' | 'tcp';
  address: string;
  /** TCP only. */
  port?: number;
}

export interface ProbeResult {
  ok: boolean;
  /** Round trip or connect time in ms, when ok. */
  ms?: number;
  /** One line for the job's log: what was tried and what happened. */
  detail: string;
}

export interface HypervisorDriver {
  readonly name: string;
  /** Power the replica on (from its restore point if it was off). Idempotent. */
  powerOn(vm: ReplicaSpec): Promise<void>;
  /** Power it off. Idempotent; a replica the driver does not know is off. */
  powerOff(vm: ReplicaSpec): Promise<void>;
  /** Discard the replica's changes since its restore point (powered off first). */
  revert(vm: ReplicaSpec): Promise<void>;
  /** Replicas the driver runs (or knows), with their power state. */
  list(): Promise<ReplicaInfo[]>;
  /**
   * Check, from the replica's network position, that `target` answers within
   * `timeoutMs`: e.g. the production gateway through the tunnel (partial
   * failover) or the SP appliance as gateway (full failover). A replica that
   * is off fails the probe. Never throws for an unreachable target.
   */
  probe(vm: ReplicaSpec, target: ProbeTarget, timeoutMs: number): Promise<ProbeResult>;
  /** Release what the driver holds (not the replicas). */
  close(): Promise<void>;
}

/** In-memory driver for unit tests: records calls; failures can be injected. */
export class FakeDriver implements HypervisorDriver {
  readonly name = 'fake';
  readonly calls: string[] = [];
  readonly power = new Map<string, PowerState>();
  /** `op:tenant/name` → error to throw (once per entry in the count). */
  readonly failures = new Map<string, number>();
  /** tenant/name of replicas whose probes fail. */
  readonly unreachable = new Set<string>();

  private check(op: string, vm: ReplicaSpec): void {
    const key = `${op}:${vm.tenant}/${vm.name}`;
    this.calls.push(key);
    const n = this.failures.get(key) ?? 0;
    if (n > 0) {
      this.failures.set(key, n - 1);
      throw new Error(`${op} of ${vm.tenant}/${vm.name} failed (injected)`);
    }
  }

  powerOn(vm: ReplicaSpec): Promise<void> {
    this.check('on', vm);
    this.power.set(`${vm.tenant}/${vm.name}`, 'on');
    return Promise.resolve();
  }

  powerOff(vm: ReplicaSpec): Promise<void> {
    this.check('off', vm);
    this.power.set(`${vm.tenant}/${vm.name}`, 'off');
    return Promise.resolve();
  }

  revert(vm: ReplicaSpec): Promise<void> {
    this.check('revert', vm);
    this.power.set(`${vm.tenant}/${vm.name}`, 'off');
    return Promise.resolve();
  }

  list(): Promise<ReplicaInfo[]> {
    return Promise.resolve([...this.power].map(([k, power]) => {
      const [tenant, name] = k.split('/') as [string, string];
      return { tenant, name, host: 'fake', power };
    }));
  }

  probe(vm: ReplicaSpec, target: ProbeTarget): Promise<ProbeResult> {
    this.calls.push(`probe:${vm.tenant}/${vm.name}`);
    const key = `${vm.tenant}/${vm.name}`;
    const ok = this.power.get(key) === 'on' && !this.unreachable.has(key);
    return Promise.resolve(ok ? { ok, ms: 1, detail: `${target.kind} ${target.address}: answered` } : { ok, detail: `${target.kind} ${target.address}: no answer` });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
