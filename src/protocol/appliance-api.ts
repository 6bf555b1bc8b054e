/**
 * Schemas of the appliance's management API and of its persisted desired
 * state (TypeBox: one definition gives the JSON Schema the API validates and
 * documents with, and the TypeScript type). Pure: no I/O.
 *
 * Conventions, for every object below:
 * - unknown fields are refused (`additionalProperties: false`);
 * - lengths and ranges are bounded, so no request can make the appliance
 *   hold unbounded memory;
 * - secrets (tokens, preshared keys) appear in requests and in the one
 *   response that creates them, never in listings or status.
 *
 * The control plane (src/control/) drives appliances with these types.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';

const strict = { additionalProperties: false } as const;

/** Segment id, 1..4094: the tenant network's id end to end. */
export const SegmentId = Type.Integer({ minimum: 1, maximum: 4094, description: 'segment id, the same on both appliances' });
const IfName = Type.String({ pattern: '^[A-Za-z0-9_.-]{1,15}$', description: 'Linux interface name' });
/** Base64 of a 32-byte key (X25519 public key, preshared key). */
export const Key32 = Type.String({ pattern: '^[A-Za-z0-9+/]{43}=$', description: 'base64 of 32 bytes' });
/** `IPv4:PORT` or `[IPv6]:PORT`. */
export const EndpointText = Type.String({ minLength: 9, maxLength: 64, pattern: '^(\\d{1,3}(\\.\\d{1,3}){3}|\\[[0-9a-fA-F:.]+\\]):\\d{1,5}$', description: 'IPv4:PORT or [IPv6]:PORT' });
const Prefix = Type.String({ minLength: 3, maxLength: 64, pattern: '^[0-9a-fA-F:.]+/\\d{1,3}$', description: 'ADDRESS/PREFIX' });
const Address = Type.String({ minLength: 2, maxLength: 45, pattern: '^[0-9a-fA-F:.]+$', description: 'IPv4 or IPv6 address' });
/** Names of rules and tokens: what nftables counters and logs can carry. */
const Name = Type.String({ pattern: '^[a-z0-9][a-z0-9_]{0,31}$', description: '1-32 of a-z, 0-9, _; first a letter or digit' });
const Port = Type.Integer({ minimum: 1, maximum: 65535 });

export const SegmentBackingSchema = Type.Union([
  Type.Object({ kind: Type.Literal('access'), interface: IfName }, strict),
  Type.Object({ kind: Type.Literal('vlan'), trunk: IfName, vlan: Type.Integer({ minimum: 1, maximum: 4094 }) }, strict),
], { description: 'how the segment reaches its network: a dedicated interface, or a VLAN on a trunk' });

/** The writable part of a segment (`PUT /v1/segments/{id}`); the id is in the path. */
export const SegmentBody = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 63, description: 'human name of the production network' }),
  backing: Type.Optional(SegmentBackingSchema),
  mode: Type.Union([Type.Literal('extend'), Type.Literal('gateway'), Type.Literal('isolated')], {
    description: 'extend: bridged to production through the tunnel; gateway: the appliance routes for the segment (full site failover); isolated: nothing forwarded',
  }),
  internet: Type.Boolean({ description: 'SNAT out of the external interface, in gateway mode' }),
  gateway: Type.Optional(Type.Object({
    ipv4: Type.Optional(Type.String({ minLength: 9, maxLength: 18, pattern: '^\\d{1,3}(\\.\\d{1,3}){3}/\\d{1,2}$', description: 'e.g. 10.1.0.1/24' })),
    ipv6: Type.Optional(Type.String({ minLength: 4, maxLength: 49, pattern: '^[0-9a-fA-F:]+/\\d{1,3}$', description: 'e.g. fd00:1::1/64' })),
  }, { additionalProperties: false, description: 'the production gateway (ADDRESS/PREFIX per family) the appliance takes over in gateway mode; its prefix is the segment\'s subnet' })),
}, strict);
export type SegmentBody = Static<typeof SegmentBody>;

export const Segment = Type.Object({ id: SegmentId, ...SegmentBody.properties }, strict);
export type Segment = Static<typeof Segment>;

/** Public IP rules: public address (+ protocol + port) → replica address (+ port). Body of `PUT /v1/public-rules/{name}`. */
export const PublicRuleBody = Type.Union([
  Type.Object({
    kind: Type.Literal('port'), segment: SegmentId, publicAddress: Address, protocol: Type.Union([Type.Literal('tcp'), Type.Literal('udp')]),
    publicPort: Port, target: Address, targetPort: Type.Optional(Port),
  }, strict),
  Type.Object({ kind: Type.Literal('address'), segment: SegmentId, publicAddress: Address, target: Address }, strict),
]);
export type PublicRuleBody = Static<typeof PublicRuleBody>;
export const PublicRule = Type.Union([
  Type.Object({ name: Name, ...PublicRuleBody.anyOf[0].properties }, strict),
  Type.Object({ name: Name, ...PublicRuleBody.anyOf[1].properties }, strict),
]);
export type PublicRule = Static<typeof PublicRule>;

/** Body of `PUT /v1/peers/{publicKey}`: a peer appliance of the tunnel. */
export const PeerBody = Type.Object({
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 63, description: 'label for people' })),
  endpoint: Type.Optional(EndpointText),
  segments: Type.Array(SegmentId, { maxItems: 4094, uniqueItems: true, description: 'segments this peer carries; its frames of others are dropped' }),
  presharedKey: Type.Optional(Type.String({ ...Key32, description: 'write-only: never shown again' })),
  persistentKeepalive: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'seconds' })),
  allowedIps: Type.Optional(Type.Array(Prefix, { maxItems: 64, description: 'L3 mode: prefixes routed to this peer and allowed as sources from it' })),
}, strict);
export type PeerBody = Static<typeof PeerBody>;
export const Peer = Type.Object({ publicKey: Key32, ...PeerBody.properties }, strict);
export type Peer = Static<typeof Peer>;
/** A peer as the API shows it: the preshared key only as a flag. */
export const PeerView = Type.Object({
  publicKey: Key32, name: Type.Optional(PeerBody.properties.name), endpoint: Type.Optional(EndpointText),
  segments: PeerBody.properties.segments, persistentKeepalive: Type.Optional(PeerBody.properties.persistentKeepalive),
  allowedIps: PeerBody.properties.allowedIps, hasPresharedKey: Type.Boolean(),
}, strict);
export type PeerView = Static<typeof PeerView>;

export const Routing = Type.Object({
  betweenSegments: Type.Boolean({ description: "route between the tenant's gateway segments" }),
}, strict);
export type Routing = Static<typeof Routing>;

/** The appliance's desired state: what `PUT /v1/desired` replaces as a whole. */
export const Desired = Type.Object({
  segments: Type.Array(Segment, { maxItems: 4094 }),
  publicRules: Type.Array(PublicRule, { maxItems: 1024 }),
  peers: Type.Array(Peer, { maxItems: 256 }),
  routing: Routing,
}, strict);
export type Desired = Static<typeof Desired>;

export const DesiredView = Type.Object({
  version: Type.Integer({ description: 'the desired state\'s version (its ETag)' }),
  segments: Type.Array(Segment),
  publicRules: Type.Array(PublicRule),
  peers: Type.Array(PeerView),
  routing: Routing,
}, strict);
export type DesiredView = Static<typeof DesiredView>;

// --- tokens ------------------------------------------------------------------

export const TokenScope = Type.Union([Type.Literal('admin'), Type.Literal('read')], {
  description: 'admin: everything; read: GET requests and /metrics only',
});
export type TokenScope = Static<typeof TokenScope>;

export const ApiTokenCreate = Type.Object({ name: Name, scope: TokenScope }, strict);
export const ApiTokenView = Type.Object({
  id: Type.String(), name: Type.String(), scope: TokenScope, createdAt: Type.String(), revokedAt: Type.Optional(Type.String()),
}, strict);
export type ApiTokenView = Static<typeof ApiTokenView>;
export const ApiTokenCreated = Type.Object({ ...ApiTokenView.properties, token: Type.String({ description: 'the bearer token; shown only in this answer' }) }, strict);

export const PairingTokenCreate = Type.Object({
  segments: Type.Array(SegmentId, { minItems: 1, maxItems: 4094, uniqueItems: true, description: 'segments the paired tenant appliance will carry' }),
  ttlSeconds: Type.Integer({ minimum: 60, maximum: 7 * 86400, description: 'lifetime of the token in s' }),
  endpoint: Type.Optional(Type.String({ ...EndpointText, description: "this SP appliance's tunnel endpoint as the tenant reaches it; default from the appliance's options" })),
  apiUrl: Type.Optional(Type.String({ minLength: 10, maxLength: 200, pattern: '^https://', description: "this appliance's API URL as the tenant reaches it; default from the appliance's options" })),
  name: Type.Optional(PeerBody.properties.name),
}, strict);
export type PairingTokenCreate = Static<typeof PairingTokenCreate>;
export const PairingTokenView = Type.Object({
  id: Type.String(), segments: Type.Array(SegmentId), name: Type.Optional(Type.String()), createdAt: Type.String(), expiresAt: Type.String(),
  state: Type.Union([Type.Literal('unused'), Type.Literal('used'), Type.Literal('expired'), Type.Literal('revoked')]),
  usedBy: Type.Optional(Key32),
}, strict);
export type PairingTokenView = Static<typeof PairingTokenView>;
export const PairingTokenCreated = Type.Object({ ...PairingTokenView.properties, token: Type.String({ description: 'the one-time token; shown only in this answer' }) }, strict);
export type PairingTokenCreated = Static<typeof PairingTokenCreated>;

/** What the SP appliance answers to a redemption: how to reach it. */
export const PairingRedeem = Type.Object({
  token: Type.String({ minLength: 20, maxLength: 2048 }),
  publicKey: Key32,
  name: Type.Optional(PeerBody.properties.name),
}, strict);
export const PairingRedeemed = Type.Object({
  publicKey: Key32, endpoint: EndpointText, segments: Type.Array(SegmentId), name: Type.String(),
}, strict);
export type PairingRedeemed = Static<typeof PairingRedeemed>;
/** Body of `POST /v1/pairings` on the tenant appliance. */
export const PairRequest = Type.Object({ token: PairingRedeem.properties.token }, strict);

// --- status ------------------------------------------------------------------

const Counters = Type.Object({ rxPackets: Type.Number(), rxBytes: Type.Number(), txPackets: Type.Number(), txBytes: Type.Number() }, strict);
export const PeerStatusView = Type.Object({
  publicKey: Type.String(), name: Type.Optional(Type.String()), endpoint: Type.Union([Type.String(), Type.Null()]),
  up: Type.Boolean({ description: 'a handshake completed in the last 180 s' }),
  lastHandshakeAgoMs: Type.Union([Type.Number(), Type.Null()]),
  handshakes: Type.Number(), segments: Type.Array(Type.Integer()), counters: Counters,
  drops: Type.Record(Type.String(), Type.Number()),
}, strict);
export const SegmentStatusView = Type.Object({
  id: Type.Integer(), name: Type.String(), mode: Type.String(), internet: Type.Boolean(),
  toTunnel: Type.Number(), fromTunnel: Type.Number(), drops: Type.Record(Type.String(), Type.Number()),
}, strict);
export const RuleStatusView = Type.Object({
  name: Type.String(), kind: Type.String(), segment: Type.Integer(), publicAddress: Type.String(), target: Type.String(),
  protocol: Type.Optional(Type.String()), publicPort: Type.Optional(Type.Integer()), targetPort: Type.Optional(Type.Integer()),
  hits: Type.Union([Type.Object({ packets: Type.Number(), bytes: Type.Number() }, strict), Type.Null()]),
}, strict);
export const StatusView = Type.Object({
  name: Type.String(), role: Type.String(), publicKey: Type.String(), version: Type.Integer(),
  listenPort: Type.Union([Type.Integer(), Type.Null()]),
  peers: Type.Array(PeerStatusView), segments: Type.Array(SegmentStatusView), publicRules: Type.Array(RuleStatusView),
  routing: Routing,
  unauthenticatedDrops: Type.Record(Type.String(), Type.Number()),
  reconcileErrors: Type.Integer(), lastReconcileError: Type.Union([Type.String(), Type.Null()]),
}, strict);
export type StatusView = Static<typeof StatusView>;

/** RFC 9457 problem details, with nea's error code (docs/errors.md). */
export const Problem = Type.Object({
  type: Type.String(), title: Type.String(), status: Type.Integer(), detail: Type.String(), code: Type.String(),
}, { additionalProperties: false, description: 'application/problem+json' });
export type Problem = Static<typeof Problem>;

/** Every schema above, by name: components of the OpenAPI document. */
export const SCHEMAS: Record<string, TSchema> = {
  Segment, SegmentBody, PublicRule, PublicRuleBody, Peer, PeerBody, PeerView, Routing, Desired, DesiredView,
  ApiTokenCreate, ApiTokenView, ApiTokenCreated, PairingTokenCreate, PairingTokenView, PairingTokenCreated,
  PairingRedeem, PairingRedeemed, PairRequest, StatusView, Problem,
};
