/**
 * Configuration of each benchmarked tunnel, rendered from a few facts about
 * one end. Pure (table-tested); the systems in ./systems.ts write the text to
 * files and start the programs. docs/bench.md explains each choice.
 */

/** Facts about one end of a point-to-point tunnel across the WAN. */
export interface TunnelEnd {
  /** This end's WAN address. */
  local: string;
  /** The other end's WAN address. */
  remote: string;
  /** UDP port, the same on both ends. */
  port: number;
  /** MTU of the WAN link in bytes. */
  wanMtu: number;
}

export interface OpenvpnEnd extends TunnelEnd {
  /** TLS role: `server` answers the handshake (a2), `client` starts it (a1). */
  role: 'server' | 'client';
  /** Name of the TAP device OpenVPN creates. */
  dev: string;
  /** Files of the TLS identity (PEM). */
  ca: string;
  cert: string;
  key: string;
  /** Socket buffer size asked for, in bytes (the kernel caps it at net.core.[rw]mem_max). */
  socketBuffer: number;
}

/**
 * OpenVPN 2.6, peer-to-peer TLS mode, TAP, UDP, AES-256-GCM, tuned: fast-io,
 * large socket buffers, txqueuelen 1000; tun-mtu 1500 so the hosts keep MTU
 * 1500, `mssfix <wanMtu> mtu` so TCP segments fit one WAN packet after
 * encapsulation, and larger frames (UDP, ICMP) travel as IP fragments of the
 * outer datagram (the kernel fragments; OpenVPN's own `fragment` is not used).
 */
export function openvpnConfig(e: OpenvpnEnd): string {
  const server = e.role === 'server';
  return [
    `# nea bench: OpenVPN ${server ? 'TLS server (a2)' : 'TLS client (a1)'}, TAP, UDP, AES-256-GCM`,
    `dev ${e.dev}`,
    'dev-type tap',
    'proto udp4',
    `local ${e.local}`,
    `lport ${e.port}`,
    `remote ${e.remote} ${e.port}`,
    server ? 'tls-server' : 'tls-client',
    ...(server ? ['dh none'] : []),
    `ca ${e.ca}`,
    `cert ${e.cert}`,
    `key ${e.key}`,
    `remote-cert-tls ${server ? 'client' : 'server'}`,
    'data-ciphers AES-256-GCM',
    'data-ciphers-fallback AES-256-GCM',
    'tun-mtu 1500',
    `mssfix ${e.wanMtu} mtu`,
    'txqueuelen 1000',
    'fast-io',
    `sndbuf ${e.socketBuffer}`,
    `rcvbuf ${e.socketBuffer}`,
    // Data channel offload does not do TAP; say so instead of letting it probe.
    'disable-dco',
    'verb 3',
    '',
  ].join('\n');
}

export interface TincEnd extends TunnelEnd {
  /** tinc node name of this end (letters, digits, `_`). */
  name: string;
  /** Node this end connects to, if it initiates (a1). */
  connectTo?: string;
  /** Name of the TAP device tincd creates. */
  iface: string;
  privateKeyFile: string;
}

/** tinc.conf: switch mode (a learning L2 switch), TAP, IPv4 only. */
export function tincConf(e: TincEnd): string {
  return [
    `Name = ${e.name}`,
    'Mode = switch',
    'DeviceType = tap',
    `Interface = ${e.iface}`,
    'AddressFamily = ipv4',
    `Port = ${e.port}`,
    `PrivateKeyFile = ${e.privateKeyFile}`,
    ...(e.connectTo !== undefined ? [`ConnectTo = ${e.connectTo}`] : []),
    '',
  ].join('\n');
}

/**
 * hosts/NAME: how to reach a node and what it accepts. AES-256-CBC with
 * HMAC-SHA256 (Blowfish, tinc 1.0's default, sits in OpenSSL 3's legacy
 * provider and is slower than AES-NI anyway); no compression.
 */
export function tincHost(address: string, port: number, publicPem: string): string {
  return [
    `Address = ${address}`,
    `Port = ${port}`,
    'Cipher = aes-256-cbc',
    'Digest = sha256',
    'Compression = 0',
    publicPem.trimEnd(),
    '',
  ].join('\n');
}

export interface WgEnd extends TunnelEnd {
  iface: string;
  /** File holding this end's base64 private key. */
  privateKeyFile: string;
  peerPublicKey: string;
  /** Subnet routed to the peer (its hosts). */
  peerSubnet: string;
}

/** Arguments of `wg` configuring one wireguard-go end. */
export function wgSetArgs(e: WgEnd): string[] {
  return ['set', e.iface, 'private-key', e.privateKeyFile, 'listen-port', String(e.port),
    'peer', e.peerPublicKey, 'endpoint', `${e.remote}:${e.port}`, 'allowed-ips', e.peerSubnet];
}

/** wireguard-go's MTU: the WAN's minus IPv4 (20), UDP (8) and WireGuard (32) overhead. */
export function wgMtu(wanMtu: number): number {
  return wanMtu - 60;
}

export interface NeaEnd extends TunnelEnd {
  role: 'tenant' | 'sp';
  name: string;
  privateKey: string;
  peerPublicKey: string;
  segmentId: number;
  /** This appliance's host-facing link, bridged into the segment by the appliance. */
  uplink: string;
}

/** The `nea appliance run` configuration of one end (see src/appliance/config.ts). */
export function neaConfig(e: NeaEnd): Record<string, unknown> {
  return {
    role: e.role,
    name: e.name,
    privateKey: e.privateKey,
    tunnel: {
      listenPort: e.port,
      wanMtu: e.wanMtu,
      peers: [{ publicKey: e.peerPublicKey, endpoint: `${e.remote}:${e.port}`, segments: [e.segmentId] }],
    },
    segments: [{ id: e.segmentId, name: 'bench', uplink: e.uplink }],
  };
}

/** The openssl commands making a throw-away CA and a server and a client certificate in `dir`. */
export function pkiCommands(dir: string, days = 2): { args: string[]; ext?: { file: string; text: string } }[] {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const cmds: { args: string[]; ext?: { file: string; text: string } }[] = [
    { args: ['req', '-x509', ...ec, '-keyout', `${dir}/ca.key`, '-out', `${dir}/ca.crt`, '-subj', '/CN=nea-bench-ca', '-days', String(days),
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'] },
  ];
  (['server', 'client'] as const).forEach((who, i) => {
    const ext = { file: `${dir}/${who}.ext`, text: `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=${who === 'server' ? 'serverAuth' : 'clientAuth'}\n` };
    cmds.push({ args: ['req', '-new', ...ec, '-keyout', `${dir}/${who}.key`, '-out', `${dir}/${who}.csr`, '-subj', `/CN=nea-bench-${who}`] });
    cmds.push({ args: ['x509', '-req', '-in', `${dir}/${who}.csr`, '-CA', `${dir}/ca.crt`, '-CAkey', `${dir}/ca.key`, '-set_serial', String(i + 2),
      '-days', String(days), '-extfile', ext.file, '-out', `${dir}/${who}.crt`], ext });
  });
  return cmds;
}
