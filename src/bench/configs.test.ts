import { describe, expect, it } from 'vitest';
import { parseApplianceConfig } from '../appliance/config.js';
import { neaConfig, openvpnConfig, pkiCommands, tincConf, tincHost, wgMtu, wgSetArgs } from './configs.js';
import { clampX25519, x25519KeyPair, x25519Public } from './keys.js';

const end = { local: '192.0.2.1', remote: '192.0.2.2', port: 1194, wanMtu: 1500 };

describe('openvpnConfig', () => {
  const client = openvpnConfig({ ...end, role: 'client', dev: 'ovpn0', ca: '/p/ca.crt', cert: '/p/client.crt', key: '/p/client.key', socketBuffer: 4194304 }).split('\n');
  const server = openvpnConfig({ ...end, local: '192.0.2.2', remote: '192.0.2.1', role: 'server', dev: 'ovpn0', ca: '/p/ca.crt', cert: '/p/server.crt', key: '/p/server.key', socketBuffer: 4194304 }).split('\n');

  it('is TAP over UDP with AES-256-GCM and the tuning', () => {
    for (const line of ['dev ovpn0', 'dev-type tap', 'proto udp4', 'data-ciphers AES-256-GCM', 'tun-mtu 1500', 'mssfix 1500 mtu',
      'fast-io', 'sndbuf 4194304', 'rcvbuf 4194304', 'txqueuelen 1000']) {
      expect(client).toContain(line);
      expect(server).toContain(line);
    }
  });

  it('gives each end its TLS role and the other end as remote', () => {
    expect(client).toEqual(expect.arrayContaining(['tls-client', 'remote-cert-tls server', 'remote 192.0.2.2 1194', 'local 192.0.2.1', 'cert /p/client.crt']));
    expect(client).not.toContain('dh none');
    expect(server).toEqual(expect.arrayContaining(['tls-server', 'dh none', 'remote-cert-tls client', 'remote 192.0.2.1 1194']));
  });

  it('fits TCP to another WAN MTU', () => {
    expect(openvpnConfig({ ...end, wanMtu: 1400, role: 'client', dev: 't', ca: 'a', cert: 'b', key: 'c', socketBuffer: 1 })).toContain('mssfix 1400 mtu\n');
  });
});

describe('tinc', () => {
  it('runs in switch mode on a TAP; only the initiator has ConnectTo', () => {
    const a1 = tincConf({ ...end, port: 655, name: 'a1', iface: 'tinc0', privateKeyFile: '/k', connectTo: 'a2' });
    expect(a1).toBe('Name = a1\nMode = switch\nDeviceType = tap\nInterface = tinc0\nAddressFamily = ipv4\nPort = 655\nPrivateKeyFile = /k\nConnectTo = a2\n');
    expect(tincConf({ ...end, port: 655, name: 'a2', iface: 'tinc0', privateKeyFile: '/k' })).not.toContain('ConnectTo');
  });

  it('host files carry address, cipher and the PEM key last', () => {
    const h = tincHost('192.0.2.2', 655, '-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n');
    expect(h).toBe('Address = 192.0.2.2\nPort = 655\nCipher = aes-256-cbc\nDigest = sha256\nCompression = 0\n' +
      '-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n');
  });
});

describe('wireguard-go', () => {
  it('is configured by one `wg set`', () => {
    expect(wgSetArgs({ ...end, port: 51820, iface: 'nbw1-a', privateKeyFile: '/k', peerPublicKey: 'PUB=', peerSubnet: '198.51.100.128/25' }))
      .toEqual(['set', 'nbw1-a', 'private-key', '/k', 'listen-port', '51820', 'peer', 'PUB=', 'endpoint', '192.0.2.2:51820', 'allowed-ips', '198.51.100.128/25']);
  });

  it('uses the WAN MTU minus IPv4, UDP and WireGuard overhead', () => {
    expect(wgMtu(1500)).toBe(1440);
  });
});

describe('neaConfig', () => {
  it('is a configuration the appliance accepts', () => {
    const a = x25519KeyPair();
    const b = x25519KeyPair();
    const raw = neaConfig({ ...end, port: 51820, role: 'tenant', name: 'bench-a1', privateKey: a.privateKey, peerPublicKey: b.publicKey, segmentId: 10, uplink: 'host' });
    expect(raw).toEqual({
      role: 'tenant', name: 'bench-a1', privateKey: a.privateKey,
      tunnel: { listenPort: 51820, wanMtu: 1500, peers: [{ publicKey: b.publicKey, endpoint: '192.0.2.2:51820', segments: [10] }] },
      segments: [{ id: 10, name: 'bench', uplink: 'host' }],
    });
    expect(() => parseApplianceConfig(raw)).not.toThrow();
  });
});

describe('keys', () => {
  it('derives the X25519 public key of RFC 7748 §6.1', () => {
    const alice = Buffer.from('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a', 'hex');
    expect(Buffer.from(x25519Public(alice.toString('base64')), 'base64').toString('hex'))
      .toBe('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
  });

  it('makes clamped private keys', () => {
    const k = Buffer.from(x25519KeyPair(new Uint8Array(32).fill(255)).privateKey, 'base64');
    expect(k[0]! & 7).toBe(0);
    expect(k[31]! & 0xc0).toBe(0x40);
    expect(clampX25519(new Uint8Array(32))[31]).toBe(64);
  });
});

describe('pkiCommands', () => {
  it('makes a CA, then a server and a client certificate with their extended key usage', () => {
    const c = pkiCommands('/d');
    expect(c).toHaveLength(5);
    expect(c[0]!.args.slice(0, 2)).toEqual(['req', '-x509']);
    expect(c.filter((x) => x.args[0] === 'x509').map((x) => x.ext?.text.match(/extendedKeyUsage=(\w+)/)?.[1])).toEqual(['serverAuth', 'clientAuth']);
    expect(c.flatMap((x) => x.args).filter((a) => a.endsWith('.crt') && a !== '/d/ca.crt')).toEqual(['/d/server.crt', '/d/client.crt']);
  });
});
