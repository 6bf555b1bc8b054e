#!/usr/bin/env node
/**
 * nea-config: the appliance's configuration step, run by nea-config.service
 * on every boot before the network and the appliance start (docs/image.md).
 *
 * 1. Reads `appliance.json` (nea's config file) and `settings.json` (the
 *    operating system's settings, optional) from the config drive: a disk or
 *    CD whose file system is labelled NEACONFIG (`nea.config_label=` on the
 *    kernel command line names another label). Both are validated; when they
 *    are valid they replace /etc/nea/appliance.json and /etc/nea/settings.json.
 *    Without a drive, the files installed by an earlier boot are used.
 * 2. Generates the appliance's keys when they do not exist yet (the tunnel
 *    key in /var/lib/nea/private.key, the SSH host keys): never regenerated.
 * 3. Writes this boot's settings under /run: the management network
 *    (systemd-networkd), interface names by MAC, NTP servers, SSH on or off,
 *    serial console login on or off, the root password, and the options of
 *    `nea appliance run` (/run/nea/nea.env).
 *
 * A bad config is refused with a message naming the file and field, on the
 * console and in the journal; the unit fails and nea.service does not start.
 *
 * `nea-config.js check DIR` validates DIR/appliance.json and
 * DIR/settings.json and changes nothing (image/make-config-drive runs it).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

const NEA_DIR = process.env.NEA_DIR ?? '/usr/lib/nea';
const ETC = '/etc/nea';
const STATE_DIR = '/var/lib/nea';
const RUN = '/run/nea';
const DEFAULT_LABEL = 'NEACONFIG';
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

class ConfigError extends Error {}

const say = (msg) => { process.stdout.write(`nea-config: ${msg}\n`); };
const fail = (file, field, what) => { throw new ConfigError(`${file}: ${field}: ${what}`); };
const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);

function checkKeys(file, at, obj, allowed) {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) fail(file, at === '' ? k : `${at}.${k}`, `unknown field (allowed: ${allowed.join(', ')})`);
  }
}

function parseCidr(text) {
  if (typeof text !== 'string') return undefined;
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  const family = isIP(m[1]);
  const len = Number(m[2]);
  if (family === 0 || len > (family === 4 ? 32 : 128)) return undefined;
  return { address: m[1], family, len };
}

function stringList(file, at, v, check, what) {
  if (!Array.isArray(v)) fail(file, at, `must be an array of ${what}`);
  v.forEach((x, i) => { if (!check(x)) fail(file, `${at}[${i}]`, `must be ${what}, got ${JSON.stringify(x)}`); });
  return v;
}

const isAddress = (x) => typeof x === 'string' && isIP(x) !== 0;

/** Validates settings.json; returns it with defaults filled in. */
export function parseSettings(raw, file = 'settings.json') {
  if (!isObject(raw)) fail(file, '(top level)', 'must be a JSON object');
  checkKeys(file, '', raw, ['hostname', 'management', 'interfaces', 'ntp', 'nea', 'ssh', 'console']);
  const out = { management: { interface: 'eth0', dhcp: true, addresses: [], dns: [] }, interfaces: {}, ntp: [], nea: {}, ssh: { authorizedKeys: [] }, console: { serialLogin: false } };
  if (raw.hostname !== undefined) {
    if (typeof raw.hostname !== 'string' || !HOSTNAME.test(raw.hostname)) fail(file, 'hostname', 'must be a host name (letters, digits, "-", dot-separated labels of at most 63)');
    out.hostname = raw.hostname;
  }
  if (raw.management === 'none') {
    out.management = 'none';
  } else if (raw.management !== undefined) {
    const m = raw.management;
    if (!isObject(m)) fail(file, 'management', 'must be an object, or "none" (no management interface of its own: nea owns all of them)');
    checkKeys(file, 'management', m, ['interface', 'dhcp', 'addresses', 'gateway', 'gateway6', 'dns', 'mtu']);
    const mg = { interface: 'eth0', addresses: [], dns: [] };
    if (m.interface !== undefined) {
      if (typeof m.interface !== 'string' || !IFNAME.test(m.interface)) fail(file, 'management.interface', 'must be an interface name (1-15 letters, digits, "_", "." or "-")');
      mg.interface = m.interface;
    }
    if (m.addresses !== undefined) mg.addresses = stringList(file, 'management.addresses', m.addresses, (x) => parseCidr(x) !== undefined, 'an ADDRESS/PREFIX');
    if (m.dhcp !== undefined && typeof m.dhcp !== 'boolean') fail(file, 'management.dhcp', 'must be true or false');
    mg.dhcp = m.dhcp ?? mg.addresses.length === 0;
    if (!mg.dhcp && mg.addresses.length === 0) fail(file, 'management.addresses', 'give addresses when dhcp is false');
    if (m.gateway !== undefined) {
      if (isIP(m.gateway) !== 4) fail(file, 'management.gateway', 'must be an IPv4 address');
      mg.gateway = m.gateway;
    }
    if (m.gateway6 !== undefined) {
      if (isIP(m.gateway6) !== 6) fail(file, 'management.gateway6', 'must be an IPv6 address');
      mg.gateway6 = m.gateway6;
    }
    if (m.dns !== undefined) mg.dns = stringList(file, 'management.dns', m.dns, isAddress, 'an IP address');
    if (m.mtu !== undefined) {
      if (!Number.isInteger(m.mtu) || m.mtu < 576 || m.mtu > 9000) fail(file, 'management.mtu', 'must be an integer from 576 to 9000');
      mg.mtu = m.mtu;
    }
    out.management = mg;
  }
  if (raw.interfaces !== undefined) {
    if (!isObject(raw.interfaces)) fail(file, 'interfaces', 'must be an object of interface name to MAC address');
    const macs = new Set();
    for (const [name, mac] of Object.entries(raw.interfaces)) {
      if (!IFNAME.test(name)) fail(file, `interfaces.${name}`, 'the name must be 1-15 letters, digits, "_", "." or "-"');
      if (/^eth\d+$/.test(name)) fail(file, `interfaces.${name}`, 'names ethN are the kernel\'s own; choose another (wan0, trunk0, lan1, ...)');
      if (typeof mac !== 'string' || !MAC.test(mac.toLowerCase())) fail(file, `interfaces.${name}`, 'must be a MAC address (52:54:00:12:34:56)');
      if (macs.has(mac.toLowerCase())) fail(file, `interfaces.${name}`, `MAC ${mac} is already named`);
      macs.add(mac.toLowerCase());
      out.interfaces[name] = mac.toLowerCase();
    }
  }
  if (raw.ntp !== undefined) out.ntp = stringList(file, 'ntp', raw.ntp, (x) => typeof x === 'string' && (isIP(x) !== 0 || HOSTNAME.test(x)), 'an NTP server (address or host name)');
  if (raw.nea !== undefined) {
    const n = raw.nea;
    if (!isObject(n)) fail(file, 'nea', 'must be an object');
    checkKeys(file, 'nea', n, ['apiListen', 'advertiseEndpoint', 'advertiseApi', 'logLevel']);
    if (n.apiListen !== undefined) {
      const ok = typeof n.apiListen === 'string' && (n.apiListen === 'off' || listenOk(n.apiListen));
      if (!ok) fail(file, 'nea.apiListen', 'must be ADDR:PORT, [V6]:PORT or "off"');
      out.nea.apiListen = n.apiListen;
    }
    if (n.advertiseEndpoint !== undefined) {
      if (typeof n.advertiseEndpoint !== 'string' || !listenOk(n.advertiseEndpoint, true)) fail(file, 'nea.advertiseEndpoint', 'must be IPv4:PORT or [IPv6]:PORT');
      out.nea.advertiseEndpoint = n.advertiseEndpoint;
    }
    if (n.advertiseApi !== undefined) {
      let u;
      try { u = new URL(n.advertiseApi); } catch { /* below */ }
      if (typeof n.advertiseApi !== 'string' || u?.protocol !== 'https:' || /\s/.test(n.advertiseApi)) fail(file, 'nea.advertiseApi', 'must be an https:// URL');
      out.nea.advertiseApi = n.advertiseApi;
    }
    if (n.logLevel !== undefined) {
      if (!['debug', 'info', 'warn', 'error'].includes(n.logLevel)) fail(file, 'nea.logLevel', 'must be "debug", "info", "warn" or "error"');
      out.nea.logLevel = n.logLevel;
    }
  }
  if (raw.ssh !== undefined) {
    if (!isObject(raw.ssh)) fail(file, 'ssh', 'must be an object');
    checkKeys(file, 'ssh', raw.ssh, ['authorizedKeys']);
    out.ssh.authorizedKeys = stringList(file, 'ssh.authorizedKeys', raw.ssh.authorizedKeys,
      (x) => typeof x === 'string' && /^(ssh-(ed25519|rsa)|ecdsa-sha2-nistp(256|384|521)|sk-[a-z0-9@.-]+) [A-Za-z0-9+/=]+( [^\n\r]*)?$/.test(x), 'an OpenSSH public key line');
  }
  if (raw.console !== undefined) {
    const c = raw.console;
    if (!isObject(c)) fail(file, 'console', 'must be an object');
    checkKeys(file, 'console', c, ['serialLogin', 'rootPasswordHash']);
    if (c.serialLogin !== undefined && typeof c.serialLogin !== 'boolean') fail(file, 'console.serialLogin', 'must be true or false');
    out.console.serialLogin = c.serialLogin ?? false;
    if (c.rootPasswordHash !== undefined) {
      if (typeof c.rootPasswordHash !== 'string' || !/^\$(y|gy|7|2b|6|5)\$[./A-Za-z0-9$=,]+$/.test(c.rootPasswordHash)) fail(file, 'console.rootPasswordHash', 'must be a crypt(3) hash (mkpasswd / openssl passwd -6), never a clear password');
      out.console.rootPasswordHash = c.rootPasswordHash;
    }
  }
  return out;
}

function listenOk(text, literalOnly = false) {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]]+):(\d{1,5})$/.exec(text);
  if (!m) return false;
  const port = Number(m[2]);
  return port >= 1 && port <= 65535 && (!literalOnly || isIP(m[1]) !== 0);
}

/** Loads one of nea's own modules (its config validator, its key functions). */
function neaModule(path) {
  return import(pathToFileURL(join(NEA_DIR, 'dist', path)).href);
}

async function applianceParser() {
  return (await neaModule('appliance/config.js')).parseApplianceConfig;
}

function readJson(path, name) {
  let text;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`${name}: cannot read it (${e.code ?? e.message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${name}: not valid JSON: ${e.message}`);
  }
}

/** Reads and validates a directory with appliance.json and (optional) settings.json. */
export async function loadDir(dir) {
  const appRaw = readJson(join(dir, 'appliance.json'), 'appliance.json');
  const parse = await applianceParser();
  let app;
  try {
    app = parse(appRaw, 'appliance.json');
  } catch (e) {
    throw new ConfigError(e.message);
  }
  const hasSettings = existsSync(join(dir, 'settings.json'));
  const setRaw = hasSettings ? readJson(join(dir, 'settings.json'), 'settings.json') : {};
  const settings = parseSettings(setRaw);
  crossCheck(app, settings);
  return { appRaw, app, setRaw, settings };
}

/** The management interface is not one nea owns. */
function crossCheck(app, settings) {
  if (settings.management === 'none') return;
  const ifname = settings.management.interface;
  const owned = [];
  if (app.external?.interface) owned.push([app.external.interface, 'external.interface']);
  app.segments.forEach((s, i) => {
    if (s.uplink) owned.push([s.uplink, `segments[${i}].uplink`]);
    if (s.backing?.kind === 'access') owned.push([s.backing.interface, `segments[${i}].backing.interface`]);
    if (s.backing?.kind === 'vlan') owned.push([s.backing.trunk, `segments[${i}].backing.trunk`]);
  });
  for (const [name, where] of owned) {
    if (name === ifname) {
      fail('settings.json', 'management.interface', `${ifname} is appliance.json's ${where}, which nea owns; give management another interface, or "management": "none" to reach the appliance through nea's own addresses`);
    }
  }
}

// --- boot ---------------------------------------------------------------------

function run(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], ...opts });
}

function writeAtomic(path, text, mode = 0o644) {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

function cmdlineLabel() {
  const cmdline = readFileSync('/proc/cmdline', 'utf8');
  const m = /(?:^|\s)nea\.config_label=(\S+)/.exec(cmdline);
  return m ? m[1] : DEFAULT_LABEL;
}

function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** The config drive's device, or undefined. */
function findDrive(label) {
  try { run('udevadm', ['settle', '--timeout=20']); } catch { /* go on */ }
  const dev = `/dev/disk/by-label/${label}`;
  for (let i = 0; i < 20; i++) {
    if (existsSync(dev)) return dev;
    sleep(250);
  }
  // udev may not have made the link (a CD without media events): ask blkid.
  try {
    const out = run('blkid', ['-l', '-o', 'device', '-t', `LABEL=${label}`]).trim();
    if (out) return out;
  } catch { /* none */ }
  return undefined;
}

function userIds(name) {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`no user ${name}`);
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

function networkFile(m) {
  const lines = ['# Written by nea-config from settings.json (management) on every boot.', '[Match]', `Name=${m.interface}`, '', '[Link]', 'RequiredForOnline=yes'];
  if (m.mtu) lines.push(`MTUBytes=${m.mtu}`);
  lines.push('', '[Network]', `DHCP=${m.dhcp ? 'ipv4' : 'no'}`);
  for (const a of m.addresses) lines.push(`Address=${a}`);
  if (m.gateway) lines.push(`Gateway=${m.gateway}`);
  if (m.gateway6) lines.push(`Gateway=${m.gateway6}`);
  for (const d of m.dns) lines.push(`DNS=${d}`);
  if (m.dhcp) lines.push('', '[DHCPv4]', 'UseHostname=no');
  return lines.join('\n') + '\n';
}

async function boot() {
  mkdirSync(RUN, { recursive: true, mode: 0o755 });
  for (const f of ['nea.env', 'ssh-enabled', 'serial-login', 'config-error']) rmSync(join(RUN, f), { force: true });
  const label = cmdlineLabel();
  const dev = findDrive(label);
  let cfg;
  let source;
  if (dev) {
    const mnt = mkdtempSync(join(RUN, 'drive-'));
    try {
      run('mount', ['-o', 'ro,nodev,nosuid,noexec', dev, mnt]);
    } catch (e) {
      throw new ConfigError(`config drive ${dev} (label ${label}): cannot mount it: ${(e.stderr || e.message).trim()}`);
    }
    try {
      cfg = await loadDir(mnt);
    } finally {
      try { run('umount', [mnt]); rmSync(mnt, { recursive: true, force: true }); } catch { /* leave it */ }
    }
    const nea = userIds('nea');
    mkdirSync(ETC, { recursive: true, mode: 0o755 });
    writeAtomic(join(ETC, 'appliance.json'), JSON.stringify(cfg.appRaw, null, 2) + '\n', 0o640);
    chownSync(join(ETC, 'appliance.json'), 0, nea.gid);
    writeAtomic(join(ETC, 'settings.json'), JSON.stringify(cfg.setRaw, null, 2) + '\n', 0o600);
    source = `config drive ${label} (${dev})`;
  } else if (existsSync(join(ETC, 'appliance.json'))) {
    cfg = await loadDir(ETC);
    source = `${ETC} (no config drive labelled ${label}: the files of an earlier boot)`;
  } else {
    throw new ConfigError(`no configuration: attach a config drive (a disk or CD whose file system is labelled ${label}) with appliance.json and settings.json, and reboot`);
  }
  const { app, settings } = cfg;
  say(`appliance ${app.name}, role ${app.role}, ${app.segments.length} segment(s); configuration from ${source}`);

  // Host name: the settings', else the appliance's name.
  const hostname = settings.hostname ?? app.name.replace(/[_.]/g, '-').toLowerCase();
  writeAtomic('/etc/hostname', `${hostname}\n`);
  writeFileSync('/proc/sys/kernel/hostname', hostname);
  const hosts = readFileSync('/etc/hosts', 'utf8').split('\n').filter((l) => !l.startsWith('127.0.1.1')).join('\n').trimEnd();
  writeAtomic('/etc/hosts', `${hosts}\n127.0.1.1\t${hostname}\n`);

  // Interface names by MAC (udev applies .link files when a device is added: re-add them).
  const netdir = '/run/systemd/network';
  mkdirSync(netdir, { recursive: true });
  for (const [name, mac] of Object.entries(settings.interfaces)) {
    writeAtomic(join(netdir, `10-nea-${name}.link`), `# Written by nea-config (settings.json interfaces).\n[Match]\nMACAddress=${mac}\n\n[Link]\nName=${name}\n`);
  }
  if (Object.keys(settings.interfaces).length > 0) {
    run('udevadm', ['control', '--reload']);
    run('udevadm', ['trigger', '--action=add', '--subsystem-match=net']);
    try { run('udevadm', ['settle', '--timeout=20']); } catch { /* go on */ }
    say(`interface names: ${Object.entries(settings.interfaces).map(([n, m]) => `${n}=${m}`).join(', ')}`);
  }
  // The management network.
  if (settings.management === 'none') {
    say('management: no interface of its own (reach the appliance through the addresses nea configures)');
  } else {
    const m = settings.management;
    writeAtomic(join(netdir, '10-nea-management.network'), networkFile(m));
    say(`management: ${m.interface}, ${[m.dhcp ? 'DHCP' : '', ...m.addresses].filter(Boolean).join(', ')}`);
  }
  if (settings.ntp.length > 0) {
    // timesyncd starts early (sysinit): it re-reads its settings on a restart.
    writeAtomic('/run/systemd/timesyncd.conf.d/nea.conf', `[Time]\nNTP=${settings.ntp.join(' ')}\n`);
    run('systemctl', ['--no-block', 'try-restart', 'systemd-timesyncd.service']);
  }

  // Root password (console login) and SSH.
  run('usermod', ['-p', settings.console.rootPasswordHash ?? '*', 'root']);
  if (settings.console.serialLogin) writeFileSync(join(RUN, 'serial-login'), '');
  const keysFile = '/root/.ssh/authorized_keys';
  if (settings.ssh.authorizedKeys.length > 0) {
    mkdirSync('/root/.ssh', { recursive: true, mode: 0o700 });
    writeAtomic(keysFile, settings.ssh.authorizedKeys.join('\n') + '\n', 0o600);
    writeFileSync(join(RUN, 'ssh-enabled'), '');
  } else {
    rmSync(keysFile, { force: true });
  }
  // The SSH host key (Ed25519 only, sshd_config.d/nea.conf): made once, on the first boot.
  if (!existsSync('/etc/ssh/ssh_host_ed25519_key')) {
    run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `root@${hostname}`, '-f', '/etc/ssh/ssh_host_ed25519_key']);
    say('generated the SSH host key');
  }
  const hostKey = run('ssh-keygen', ['-l', '-f', '/etc/ssh/ssh_host_ed25519_key.pub']).trim();
  say(`SSH ${settings.ssh.authorizedKeys.length > 0 ? `on (${settings.ssh.authorizedKeys.length} key(s))` : 'off'}; host key ${hostKey}`);
  say(`serial console login ${settings.console.serialLogin ? 'on' : 'off'}`);

  // The tunnel key: generated once, on the first boot, unless the config has
  // one; with nea's own functions (as `nea keygen` and `nea pubkey`).
  const nea = userIds('nea');
  mkdirSync(STATE_DIR, { recursive: true, mode: 0o700 });
  chownSync(STATE_DIR, nea.uid, nea.gid);
  const wg = await neaModule('dataplane/wg/crypto.js');
  const pub = (text) => wg.encodeKey(wg.publicKeyOf(wg.decodeKey(text)));
  if (app.privateKey !== undefined) {
    say(`tunnel public key ${pub(app.privateKey)} (private key from appliance.json)`);
  } else {
    const keyFile = join(STATE_DIR, 'private.key');
    if (!existsSync(keyFile)) {
      writeAtomic(keyFile, wg.encodeKey(wg.generatePrivateKey()) + '\n', 0o600);
      chownSync(keyFile, nea.uid, nea.gid);
      say('generated the tunnel key');
    }
    try {
      say(`tunnel public key ${pub(readFileSync(keyFile, 'utf8').trim())}`);
    } catch (e) {
      // Never replaced: nea refuses to start with it too, naming the file.
      throw new ConfigError(`${keyFile}: ${e.message}; restore it from a backup, or delete it to generate a new key (peers must then be paired again)`);
    }
  }

  // The options of `nea appliance run`.
  const args = [];
  if (settings.nea.apiListen) args.push('--api-listen', settings.nea.apiListen);
  if (settings.nea.advertiseEndpoint) args.push('--advertise-endpoint', settings.nea.advertiseEndpoint);
  if (settings.nea.advertiseApi) args.push('--advertise-api', settings.nea.advertiseApi);
  const env = [`NEA_ARGS="${args.join(' ')}"`];
  if (settings.nea.logLevel) env.push(`NEA_LOG_LEVEL=${settings.nea.logLevel}`);
  writeAtomic(join(RUN, 'nea.env'), env.join('\n') + '\n');
  say(`ready: starting the appliance (API ${settings.nea.apiListen ?? '0.0.0.0:8443'})`);
}

async function main(argv) {
  if (argv[0] === 'check') {
    if (argv.length !== 2) {
      process.stderr.write('usage: nea-config.js check DIR\n');
      return 2;
    }
    try {
      const { app, settings } = await loadDir(argv[1]);
      say(`${argv[1]}: valid: appliance ${app.name}, role ${app.role}, ${app.segments.length} segment(s); management ${settings.management === 'none' ? 'none' : settings.management.interface}; SSH ${settings.ssh.authorizedKeys.length > 0 ? 'on' : 'off'}`);
      return 0;
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      say(`${argv[1]}: ${e.message}`);
      return 1;
    }
  }
  if (argv.length > 0) {
    process.stderr.write('usage: nea-config.js [check DIR]\n');
    return 2;
  }
  try {
    await boot();
    return 0;
  } catch (e) {
    const msg = e instanceof ConfigError ? e.message : `unexpected error: ${e.stack ?? e}`;
    say(`ERROR: ${msg}`);
    say('the appliance is NOT started: fix the config drive and reboot (docs/image.md)');
    try { writeFileSync(join(RUN, 'config-error'), msg + '\n'); } catch { /* nothing more */ }
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
