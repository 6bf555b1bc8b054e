/**
 * Schemas of the control plane's API (TypeBox: the JSON Schema the API
 * validates and documents with, and the TypeScript type). Pure: no I/O.
 *
 * Same conventions as the appliance's API (appliance-api.ts): unknown fields
 * refused, lengths and ranges bounded, secrets only in the answer that
 * creates them. Names in paths (`{name}`) follow {@link Name}.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { EndpointText, Problem } from './appliance-api.js';

const strict = { additionalProperties: false } as const;

/** Names of hosts, pools, plans, tenants, networks, VMs, plans and rules. */
export const Name = Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,31}$', description: '1-32 of a-z, 0-9, "_", "-"; first a letter or digit' });
/** Public rule names: also nftables comments on the appliance (no "-"). */
const RuleName = Type.String({ pattern: '^[a-z0-9][a-z0-9_]{0,31}$', description: '1-32 of a-z, 0-9, "_"' });
const IfName = Type.String({ pattern: '^[A-Za-z0-9_.-]{1,15}$', description: 'Linux interface name' });
const Vlan = Type.Integer({ minimum: 1, maximum: 4094 });
const Ipv4 = Type.String({ pattern: '^\\d{1,3}(\\.\\d{1,3}){3}$', maxLength: 15, description: 'IPv4 address' });
const Ipv4Cidr = Type.String({ pattern: '^\\d{1,3}(\\.\\d{1,3}){3}/\\d{1,2}$', maxLength: 18, description: 'IPv4 ADDRESS/PREFIX' });
const Mac = Type.String({ pattern: '^[0-9a-f]{2}(:[0-9a-f]{2}){5}$', description: 'MAC, lower case, colons' });
const Time = Type.String({ description: 'ISO 8601 time' });
const Fingerprint = Type.String({ pattern: '^[0-9a-fA-F:]{64,95}$', description: 'SHA-256 of the certificate, hex (colons allowed)' });

// --- SP resources ---------------------------------------------------------------

export const HostBody = Type.Object({
  trunk: Type.String({ ...IfName, description: "the SP appliances' VLAN trunk interface on this cloud host" }),
  description: Type.Optional(Type.String({ maxLength: 200 })),
}, strict);
export type HostBody = Static<typeof HostBody>;
export const Host = Type.Object({ name: Name, ...HostBody.properties }, strict);
export type Host = Static<typeof Host>;

export const VlanPoolBody = Type.Object({
  host: Name,
  first: Vlan,
  last: Vlan,
  internet: Type.Boolean({ description: 'networks from this pool get internet access (SNAT) in full site failover' }),
}, strict);
export type VlanPoolBody = Static<typeof VlanPoolBody>;
export const VlanPool = Type.Object({ name: Name, ...VlanPoolBody.properties, used: Type.Integer(), size: Type.Integer() }, strict);
export type VlanPool = Static<typeof VlanPool>;

export const IpPoolBody = Type.Object({
  first: Ipv4, last: Ipv4,
  description: Type.Optional(Type.String({ maxLength: 200 })),
}, strict);
export type IpPoolBody = Static<typeof IpPoolBody>;
export const IpPool = Type.Object({ name: Name, ...IpPoolBody.properties, used: Type.Integer(), size: Type.Integer() }, strict);
export type IpPool = Static<typeof IpPool>;

export const PlanBody = Type.Object({
  cpu: Type.Integer({ minimum: 1, maximum: 4096, description: 'vCPUs' }),
  memoryGb: Type.Integer({ minimum: 1, maximum: 65536 }),
  storageGb: Type.Integer({ minimum: 1, maximum: 10_000_000 }),
  networksWithInternet: Type.Integer({ minimum: 0, maximum: 64 }),
  networksWithoutInternet: Type.Integer({ minimum: 0, maximum: 64 }),
  publicIps: Type.Integer({ minimum: 0, maximum: 256 }),
}, strict);
export type PlanBody = Static<typeof PlanBody>;
export const Plan = Type.Object({ name: Name, ...PlanBody.properties }, strict);
export type Plan = Static<typeof Plan>;

// --- tenants --------------------------------------------------------------------

export const TenantBody = Type.Object({ description: Type.Optional(Type.String({ maxLength: 200 })) }, strict);
export type TenantBody = Static<typeof TenantBody>;

export const SubscriptionBody = Type.Object({ host: Name }, strict);
export type SubscriptionBody = Static<typeof SubscriptionBody>;

/** A cloud network: one VLAN allocated to a tenant. */
export const CloudNetwork = Type.Object({
  host: Name, vlan: Vlan, internet: Type.Boolean(), plan: Name,
  network: Type.Optional(Type.String({ description: 'the production network mapped to it' })),
}, strict);
export type CloudNetwork = Static<typeof CloudNetwork>;

export const Subscription = Type.Object({
  plan: Name, host: Name, createdAt: Time,
  networks: Type.Array(CloudNetwork), publicIps: Type.Array(Type.String()),
}, strict);
export type Subscription = Static<typeof Subscription>;

export const ApplianceBody = Type.Object({
  url: Type.String({ minLength: 10, maxLength: 200, pattern: '^https://', description: "the SP appliance's management API" }),
  fingerprint: Fingerprint,
  token: Type.String({ minLength: 10, maxLength: 200, description: 'admin bearer token of that appliance; write-only' }),
  endpoint: Type.Optional(Type.String({ ...EndpointText, description: "its tunnel endpoint as tenants reach it (put in pairing tokens)" })),
}, strict);
export type ApplianceBody = Static<typeof ApplianceBody>;
export const ApplianceView = Type.Object({
  url: Type.String(), fingerprint: Type.String(), endpoint: Type.Optional(Type.String()), registeredAt: Time,
}, strict);
export type ApplianceView = Static<typeof ApplianceView>;

export const NetworkBody = Type.Object({
  subnet: Type.String({ ...Ipv4Cidr, description: 'production subnet, e.g. 10.1.0.0/24' }),
  gateway: Type.String({ ...Ipv4, description: 'production default gateway, taken over by the SP appliance in full site failover' }),
  vlan: Type.Integer({ minimum: 1, maximum: 4094, description: "one of the tenant's allocated cloud VLANs" }),
}, strict);
export type NetworkBody = Static<typeof NetworkBody>;
export const SegmentMode = Type.Union([Type.Literal('isolated'), Type.Literal('extend'), Type.Literal('gateway')]);
export type SegmentMode = Static<typeof SegmentMode>;
export const Network = Type.Object({
  name: Name, ...NetworkBody.properties, host: Name, internet: Type.Boolean(),
  mode: Type.Union([SegmentMode], { description: 'mode the control plane last set on the SP appliance' }),
}, strict);
export type Network = Static<typeof Network>;

export const ReplicaState = Type.Union([Type.Literal('Normal'), Type.Literal('Failover'), Type.Literal('Failback'), Type.Literal('Permanent')]);
export type ReplicaState = Static<typeof ReplicaState>;
export const ReplicaBody = Type.Object({
  network: Name,
  address: Type.String({ ...Ipv4Cidr, description: 'production address with prefix, e.g. 10.1.0.11/24' }),
  mac: Mac,
  restorePoint: Type.Optional(Type.String({ maxLength: 100 })),
}, strict);
export type ReplicaBody = Static<typeof ReplicaBody>;
export const Replica = Type.Object({ name: Name, ...ReplicaBody.properties, state: ReplicaState }, strict);
export type Replica = Static<typeof Replica>;

export const PlanRule = Type.Union([
  Type.Object({
    name: RuleName, kind: Type.Literal('port'), publicAddress: Ipv4, protocol: Type.Union([Type.Literal('tcp'), Type.Literal('udp')]),
    publicPort: Type.Integer({ minimum: 1, maximum: 65535 }), vm: Name, targetPort: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
  }, strict),
  Type.Object({ name: RuleName, kind: Type.Literal('address'), publicAddress: Ipv4, vm: Name }, strict),
], { description: "public IP rule applied in full site failover: one of the tenant's public IPs to a replica" });
export type PlanRule = Static<typeof PlanRule>;

export const FailoverPlanBody = Type.Object({
  vms: Type.Array(Type.Object({
    vm: Name,
    delaySeconds: Type.Integer({ minimum: 0, maximum: 3600, description: 'wait before powering this VM on' }),
  }, strict), { minItems: 1, maxItems: 256, description: 'replicas in boot order' }),
  publicRules: Type.Array(PlanRule, { maxItems: 256 }),
  routeBetweenNetworks: Type.Optional(Type.Boolean({ description: "route between the tenant's networks in full site failover (default true)" })),
}, strict);
export type FailoverPlanBody = Static<typeof FailoverPlanBody>;
export const FailoverPlan = Type.Object({ name: Name, ...FailoverPlanBody.properties }, strict);
export type FailoverPlan = Static<typeof FailoverPlan>;

export const TenantFailoverState = Type.Union([Type.Literal('none'), Type.Literal('partial'), Type.Literal('full'), Type.Literal('test')], {
  description: 'the failover the tenant is in; one kind at a time',
});
export type TenantFailoverState = Static<typeof TenantFailoverState>;

export const TenantView = Type.Object({
  name: Name, description: Type.Optional(Type.String()), createdAt: Time,
  failover: TenantFailoverState,
  failoverPlan: Type.Optional(Type.String({ description: 'the plan of the full or test failover in progress' })),
  subscriptions: Type.Array(Subscription),
  appliance: Type.Optional(ApplianceView),
  networks: Type.Array(Network),
  replicas: Type.Array(Replica),
  failoverPlans: Type.Array(FailoverPlan),
}, strict);
export type TenantView = Static<typeof TenantView>;
export const TenantSummary = Type.Object({
  name: Name, failover: TenantFailoverState, networks: Type.Integer(), replicas: Type.Integer(), appliance: Type.Boolean(),
}, strict);
export type TenantSummary = Static<typeof TenantSummary>;

export const PairingTokenRequest = Type.Object({
  ttlSeconds: Type.Integer({ minimum: 60, maximum: 7 * 86400, description: 'lifetime of the one-time token' }),
}, strict);
export const PairingTokenAnswer = Type.Object({ token: Type.String(), expiresAt: Time, segments: Type.Array(Vlan) }, strict);

// --- operations and jobs --------------------------------------------------------

export const FailoverRequest = Type.Union([
  Type.Object({ kind: Type.Literal('partial'), vms: Type.Array(Name, { minItems: 1, maxItems: 256, uniqueItems: true }) }, strict),
  Type.Object({ kind: Type.Literal('full'), plan: Name }, strict),
  Type.Object({ kind: Type.Literal('test'), plan: Name }, strict),
]);
export type FailoverRequest = Static<typeof FailoverRequest>;
export const VmsRequest = Type.Object({
  vms: Type.Optional(Type.Array(Name, { minItems: 1, maxItems: 256, uniqueItems: true, description: 'absent: every replica in failover (the whole site)' })),
}, strict);
export type VmsRequest = Static<typeof VmsRequest>;

export const JobState = Type.Union([
  Type.Literal('running'), Type.Literal('succeeded'), Type.Literal('degraded'),
  Type.Literal('rolling-back'), Type.Literal('rolled-back'), Type.Literal('failed'),
], {
  description: 'succeeded; degraded: done but some replicas did not answer their check; rolled-back: a step failed and what was done was undone; failed: undoing failed too (needs an operator)',
});
export type JobState = Static<typeof JobState>;
export const StepState = Type.Union([Type.Literal('pending'), Type.Literal('running'), Type.Literal('done'), Type.Literal('failed'), Type.Literal('undone'), Type.Literal('warning')]);
export type StepState = Static<typeof StepState>;
export const JobStepView = Type.Object({
  title: Type.String(), state: StepState, attempts: Type.Integer(),
  startedAt: Type.Optional(Time), endedAt: Type.Optional(Time), detail: Type.Optional(Type.String()),
}, strict);
export const JobView = Type.Object({
  id: Type.String(), tenant: Type.String(), kind: Type.String(), state: JobState,
  createdBy: Type.String(), createdAt: Time, updatedAt: Time, endedAt: Type.Optional(Time),
  request: Type.Unknown(), error: Type.Optional(Type.String()),
  progress: Type.Object({ done: Type.Integer(), total: Type.Integer() }, strict),
  steps: Type.Array(JobStepView),
}, strict);
export type JobView = Static<typeof JobView>;

export const AuditEntry = Type.Object({
  id: Type.Integer(), at: Time, actor: Type.String(), action: Type.String(), tenant: Type.Optional(Type.String()),
  target: Type.String(), outcome: Type.String(), detail: Type.Optional(Type.String()),
}, strict);
export type AuditEntry = Static<typeof AuditEntry>;

// --- tokens ---------------------------------------------------------------------

export const ControlTokenCreate = Type.Union([
  Type.Object({ name: Name, scope: Type.Literal('admin') }, strict),
  Type.Object({ name: Name, scope: Type.Literal('tenant'), tenant: Name }, strict),
], { description: 'admin: the SP, everything; tenant: one tenant, its own resources and operations only' });
export type ControlTokenCreate = Static<typeof ControlTokenCreate>;
export const ControlTokenView = Type.Object({
  id: Type.String(), name: Type.String(), scope: Type.Union([Type.Literal('admin'), Type.Literal('tenant')]),
  tenant: Type.Optional(Type.String()), createdAt: Time, revokedAt: Type.Optional(Time),
}, strict);
export type ControlTokenView = Static<typeof ControlTokenView>;
export const ControlTokenCreated = Type.Object({ ...ControlTokenView.properties, token: Type.String({ description: 'the bearer token; shown only here' }) }, strict);
export type ControlTokenCreated = Static<typeof ControlTokenCreated>;

export const ReplicaPowerView = Type.Object({ tenant: Type.String(), name: Type.String(), host: Type.String(), power: Type.String() }, strict);

export const CONTROL_SCHEMAS: Record<string, TSchema> = {
  Host, HostBody, VlanPool, VlanPoolBody, IpPool, IpPoolBody, Plan, PlanBody, TenantBody, TenantView, TenantSummary,
  SubscriptionBody, Subscription, CloudNetwork, ApplianceBody, ApplianceView, NetworkBody, Network, ReplicaBody, Replica,
  PlanRule, FailoverPlanBody, FailoverPlan, PairingTokenRequest, PairingTokenAnswer, FailoverRequest, VmsRequest,
  JobView, AuditEntry, ControlTokenCreate, ControlTokenView, ControlTokenCreated, ReplicaPowerView, Problem,
};
