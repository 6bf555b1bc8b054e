/**
 * The one registry of nea's error codes. Every `NeaError` carries one of
 * these; `status` is the HTTP status the management APIs answer with when
 * the error reaches a client; `summary` says what the code means. Each code
 * is documented in docs/errors.md (checked by a test).
 */
export const ERROR_CODES = {
  // Input
  INVALID_INPUT: { status: 400, summary: 'a config file, API body or argument was refused; nothing was changed' },
  USAGE: { status: 400, summary: 'bad command-line arguments' },
  // State
  STATE_WRITE_FAILED: { status: 500, summary: 'the state directory cannot be written' },
  // Native addon
  NATIVE_MISSING: { status: 500, summary: 'the native addon is not built' },
  // Network namespaces
  NETNS_ASYNC: { status: 500, summary: 'withNetns() was given an asynchronous callback' },
  // TAP/TUN devices
  TUN_NO_DEVICE: { status: 500, summary: '/dev/net/tun is missing: the tun module is not loaded' },
  TUN_NO_PERMISSION: { status: 500, summary: 'opening a TAP/TUN device needs CAP_NET_ADMIN' },
  TUN_BUSY: { status: 409, summary: 'the interface name is taken by an open device or another kind of link' },
  TUN_NAME_INVALID: { status: 400, summary: 'not a valid Linux interface name' },
  TUN_OPEN_FAILED: { status: 500, summary: 'opening a TAP/TUN device failed for another reason' },
  TUN_LINK_DOWN: { status: 503, summary: 'writing failed because the interface is down' },
  TUN_WRITE_FAILED: { status: 500, summary: 'writing to a TAP/TUN device failed' },
  TUN_READ_FAILED: { status: 500, summary: 'reading a TAP/TUN device failed; reading stopped' },
  TUN_CLOSED: { status: 500, summary: 'the device is closed' },
  // UDP sockets
  UDP_ADDRESS_IN_USE: { status: 409, summary: 'another socket holds the UDP address and port' },
  UDP_ADDRESS_NOT_AVAILABLE: { status: 409, summary: 'the UDP bind address is not on this host or namespace' },
  UDP_NO_PERMISSION: { status: 500, summary: 'binding a UDP port below 1024 needs CAP_NET_BIND_SERVICE' },
  UDP_OPEN_FAILED: { status: 500, summary: 'opening a UDP socket failed for another reason' },
  UDP_NO_ROUTE: { status: 503, summary: 'no route to the destination of a UDP datagram' },
  UDP_SEND_FAILED: { status: 500, summary: 'sending a UDP datagram failed' },
  UDP_READ_FAILED: { status: 500, summary: 'receiving on a UDP socket failed; receiving stopped' },
  UDP_CLOSED: { status: 500, summary: 'the UDP socket is closed' },
  // Packet sockets (VLAN trunks in user space)
  PACKET_NO_DEVICE: { status: 409, summary: 'the interface of a packet socket (a VLAN trunk) does not exist' },
  PACKET_NO_PERMISSION: { status: 500, summary: 'opening a packet socket needs CAP_NET_RAW' },
  PACKET_OPEN_FAILED: { status: 500, summary: 'opening a packet socket failed for another reason' },
  PACKET_LINK_DOWN: { status: 503, summary: 'sending on a packet socket failed because the interface is down' },
  PACKET_SEND_FAILED: { status: 500, summary: 'sending a frame on a packet socket failed' },
  PACKET_READ_FAILED: { status: 500, summary: 'receiving on a packet socket failed; receiving stopped' },
  PACKET_CLOSED: { status: 500, summary: 'the packet socket is closed' },
  // Segments
  VLAN_KERNEL_UNSUPPORTED: { status: 409, summary: 'the config asks for kernel VLAN devices but the kernel has no 802.1Q devices' },
  // Netlink and reconcile
  NETLINK_OPEN_FAILED: { status: 500, summary: 'a netlink socket could not be opened' },
  NETLINK_FAILED: { status: 500, summary: 'the kernel refused a netlink request' },
  NETLINK_TIMEOUT: { status: 504, summary: 'the kernel did not answer a netlink request in time' },
  NETLINK_CLOSED: { status: 500, summary: 'the netlink client is closed' },
  NETCONFIG_LINK_CONFLICT: { status: 409, summary: 'a link exists with another kind or another veth peer' },
  NETCONFIG_LINK_MISSING: { status: 409, summary: 'a link the desired state expects to exist is absent' },
  NETCONFIG_APPLY_FAILED: { status: 500, summary: 'reconcile stopped at a change the kernel refused' },
  // nftables
  NFT_MISSING: { status: 500, summary: 'the nft command could not be run: nftables is not installed' },
  NFT_APPLY_FAILED: { status: 500, summary: 'nft refused a ruleset; the previous ruleset stays in place' },
  NFT_READ_FAILED: { status: 500, summary: "an appliance's nftables tables could not be listed or parsed" },
  // Segment modes, gateway takeover, public IP rules (src/appliance/modes.ts, gateway.ts)
  CONNTRACK_FAILED: { status: 500, summary: 'a ctnetlink request (list or delete connection tracking entries) failed' },
  SYSCTL_FAILED: { status: 500, summary: 'a kernel setting under /proc/sys (IP forwarding) could not be written' },
  APPLY_NEEDS_RESTART: { status: 409, summary: 'a runtime change touches a part of the config that takes a restart; nothing was changed' },
  // Tunnel
  LOW_ORDER_KEY: { status: 400, summary: 'a peer public key is a low-order X25519 point' },
  INVALID_KEY: { status: 400, summary: 'a key is not 32 bytes of base64' },
  DUPLICATE_PEER: { status: 409, summary: 'a peer with that public key exists' },
  // Appliance state, management API and pairing (src/appliance/state.ts, credentials.ts, api/)
  STATE_INVALID: { status: 500, summary: 'the state file and its previous copy are both refused (damaged or invalid); the appliance does not start' },
  API_AUTH_REQUIRED: { status: 401, summary: 'the request has no bearer token (Authorization: Bearer ...)' },
  API_AUTH_INVALID: { status: 401, summary: 'the bearer token is not one this appliance issued' },
  API_TOKEN_REVOKED: { status: 403, summary: 'the bearer token was revoked' },
  API_FORBIDDEN: { status: 403, summary: "the token's scope does not allow this request (a read token writing)" },
  API_NOT_FOUND: { status: 404, summary: 'no such route or resource' },
  API_CONFLICT: { status: 409, summary: "the change contradicts the appliance's state (e.g. deleting a segment a peer carries, an id in the path and body that differ)" },
  API_PRECONDITION_FAILED: { status: 412, summary: 'If-Match / If-None-Match does not hold: someone else changed the resource; read it again' },
  API_BODY_TOO_LARGE: { status: 413, summary: "the request body exceeds the API's body limit" },
  API_UNSUPPORTED_MEDIA_TYPE: { status: 415, summary: 'the request body is not application/json' },
  API_RATE_LIMITED: { status: 429, summary: 'too many requests from this client; retry after the time in retry-after' },
  API_RESTARTING: { status: 503, summary: 'the appliance is restarting to apply a change; retry in a moment' },
  API_INTERNAL: { status: 500, summary: 'the appliance failed while handling a valid request; see its log' },
  API_UNREACHABLE: { status: 503, summary: "a client could not reach an appliance's API (connection refused, timeout, TLS failure)" },
  API_PIN_MISMATCH: { status: 502, summary: "the appliance's TLS certificate does not have the pinned SHA-256 fingerprint; nothing was sent" },
  PAIRING_TOKEN_INVALID: { status: 401, summary: 'not a pairing token of this appliance (malformed, bad signature or unknown)' },
  PAIRING_TOKEN_USED: { status: 410, summary: 'the pairing token was already redeemed (tokens are single use)' },
  PAIRING_TOKEN_EXPIRED: { status: 410, summary: "the pairing token's lifetime is over" },
  PAIRING_TOKEN_REVOKED: { status: 410, summary: 'the pairing token was revoked' },
  PAIRING_WRONG_ROLE: { status: 409, summary: 'pairing tokens are minted by an SP appliance and redeemed by a tenant appliance' },
  PAIRING_FAILED: { status: 502, summary: 'the SP appliance refused or could not be reached during pairing; the detail says why' },
  // Control plane (src/control/)
  CONTROL_NOT_FOUND: { status: 404, summary: 'no such host, pool, plan, tenant, network, replica, failover plan or job' },
  CONTROL_CONFLICT: { status: 409, summary: "the change contradicts the control plane's records (overlapping pool ranges, a resource still in use, a VLAN that is not the tenant's); nothing was changed" },
  CONTROL_EXHAUSTED: { status: 409, summary: 'a VLAN or public IP pool has too few free entries for the subscription; nothing was allocated' },
  CONTROL_BUSY: { status: 409, summary: "the tenant is in another kind of failover, or one of its operations is still running; one at a time" },
  CONTROL_APPLIANCE_FAILED: { status: 502, summary: "the tenant's SP appliance refused a change or could not be reached; the detail says which and why" },
  CONTROL_NO_APPLIANCE: { status: 409, summary: 'the tenant has no SP appliance registered yet' },
  CONTROL_DB_FAILED: { status: 500, summary: "the control plane's database cannot be opened, migrated or written" },
} as const satisfies Record<string, { status: number; summary: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;
