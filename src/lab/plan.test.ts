import { describe, expect, it } from 'vitest';
import { echoRequest, inetChecksum, isEchoReply } from './icmp.js';
import { labPlan, MAX_TENANTS } from './plan.js';

describe('lab plan', () => {
  it('gives every tenant the same production subnets, gateways and MACs, and its own appliances and namespaces', () => {
    const p = labPlan('nlab', 3);
    expect(p.tenants.map((t) => t.name)).toEqual(['acme', 'globex', 'initech']);
    const [a, b] = p.tenants;
    expect(a!.vms.map((v) => [v.name, v.cidr, v.gateway, v.mac])).toEqual(b!.vms.map((v) => [v.name, v.cidr, v.gateway, v.mac]));
    expect(a!.vms.map((v) => v.cidr)).toEqual(['10.1.0.11/24', '10.1.0.12/24', '10.2.0.11/24', '10.2.0.12/24']);
    expect([a!.spNetns, a!.taNetns, a!.vms[0]!.netns]).toEqual(['nlab-acme-sp', 'nlab-acme-ta', 'nlab-acme-web1']);
    expect(new Set(p.tenants.flatMap((t) => [t.spMgmtAddress, t.spExternalAddress, t.taWanAddress])).size).toBe(9);
  });

  it('keeps every address distinct and inside its network up to the most tenants', () => {
    const p = labPlan('x', MAX_TENANTS);
    const wan = p.tenants.flatMap((t) => [t.spExternalAddress, t.taWanAddress]);
    expect(new Set(wan).size).toBe(wan.length);
    const last = (a: string): number => Number(a.split('.')[3]);
    expect(Math.max(...wan.map(last))).toBeLessThan(last(p.publicIpFirst));
    expect(Math.max(...p.tenants.map((t) => last(t.spMgmtAddress)))).toBeLessThan(255);
    expect(2 * MAX_TENANTS).toBeLessThanOrEqual(last(p.publicIpLast) - last(p.publicIpFirst) + 1);
    expect(() => labPlan('x', MAX_TENANTS + 1)).toThrow(RangeError);
    expect(() => labPlan('x', 0)).toThrow(RangeError);
  });
});

describe('ICMP echo', () => {
  it('builds a request whose checksum verifies, and recognises its reply', () => {
    const req = echoRequest(0x1234, 1);
    expect(inetChecksum(req)).toBe(0);
    const ip = Buffer.alloc(20);
    ip[0] = 0x45;
    const reply = Buffer.concat([ip, req]);
    reply[20] = 0;
    expect(isEchoReply(reply, 0x1234, 1)).toBe(true);
    expect(isEchoReply(reply, 0x1234, 2)).toBe(false);
    reply[20] = 8;
    expect(isEchoReply(reply, 0x1234, 1)).toBe(false);
  });
});
