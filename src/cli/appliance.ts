/**
 * `nea appliance run` and `nea appliance status`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { loadApplianceConfig } from '../appliance/config.js';
import { Appliance, firewallId, type ApplianceStatus } from '../appliance/daemon.js';
import { nftNatCounters } from '../appliance/daemon-control.js';
import { ApplianceService, DEFAULT_API_PORT, parseListen } from '../appliance/service.js';
import { enterNetnsForGood } from '../netconfig/netns.js';
import { createLogger } from '../shared/log.js';
import { register, UsageError } from './main.js';

const DEFAULT_STATE_DIR = '/var/lib/nea';

type Options = NonNullable<ParseArgsConfig['options']>;

/** Strict option parsing; a bad option is a UsageError (exit code 2). */
export function parse(args: string[], options: Options): ReturnType<typeof parseArgs>['values'] {
  try {
    return parseArgs({ args, options, allowPositionals: false, strict: true }).values;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

register({
  path: ['appliance', 'run'],
  summary: 'run one appliance (role sp or tenant) until SIGTERM; SIGHUP re-reads the config',
  usage: 'nea appliance run --config FILE [--state-dir DIR] [--netns NAME] [--api-listen ADDR:PORT|off] [--advertise-endpoint ADDR:PORT] [--advertise-api URL]',
  async run(args) {
    const v = parse(args, {
      config: { type: 'string' }, 'state-dir': { type: 'string' }, netns: { type: 'string' },
      'api-listen': { type: 'string' }, 'advertise-endpoint': { type: 'string' }, 'advertise-api': { type: 'string' },
    });
    if (typeof v.config !== 'string') throw new UsageError('--config FILE is required');
    // Enter the namespace before anything opens a socket or a device.
    if (typeof v.netns === 'string') enterNetnsForGood(v.netns);
    const config = loadApplianceConfig(v.config);
    const stateDir = typeof v['state-dir'] === 'string' ? v['state-dir'] : DEFAULT_STATE_DIR;
    const log = createLogger().child(`appliance:${config.name}`);
    // NEA_NFT: the nft executable (default nft on PATH); the netns tests use it to inject a failing ruleset.
    const nftPath = process.env.NEA_NFT;
    const configFile = v.config;
    let api: { host: string; port: number } | null;
    try {
      api = parseListen(typeof v['api-listen'] === 'string' ? v['api-listen'] : `0.0.0.0:${DEFAULT_API_PORT}`);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    // The daemon runs the config file's hardware part with the state file's desired part (docs/operations.md).
    let app: Appliance | undefined;
    const service = new ApplianceService({
      config, stateDir, log, api, loadConfig: () => loadApplianceConfig(configFile),
      makeAppliance: (c) => { app = new Appliance({ config: c, stateDir, log, ...(nftPath !== undefined && nftPath !== '' && { nftPath }) }); return app; },
      natCounters: (c) => nftNatCounters(c, firewallId(c.name)),
      // Nothing runs any more: exit, so that systemd starts the appliance afresh from its state.
      onFatal: () => { process.exit(1); },
      ...(typeof v['advertise-endpoint'] === 'string' && { advertiseEndpoint: v['advertise-endpoint'] }),
      ...(typeof v['advertise-api'] === 'string' && { advertiseApi: v['advertise-api'] }),
    });
    // SIGHUP: re-read the config and apply what changes at run time (modes, public IP rules, ...);
    // a refused or failed change is logged and shown in the status, and the appliance runs on as it was.
    // One that arrives while starting is applied once started (its default action would end the process).
    const phase = { running: false, hangupWhileStarting: false };
    const onHangup = (): void => {
      if (!phase.running) { phase.hangupWhileStarting = true; return; }
      log.info('reloading the config', { file: configFile });
      service.reload().catch((e: unknown) => {
        log.error('config not applied; running as before', { error: e instanceof Error ? e.message : String(e) });
      });
    };
    process.on('SIGHUP', onHangup);
    // Signals from here on: one that arrives while starting stops the appliance once it has started.
    let stopSignal: string | undefined;
    let wake = (): void => { /* replaced below */ };
    const onSignal = (sig: string): void => { stopSignal = sig; wake(); };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
    await service.start();
    phase.running = true;
    if (phase.hangupWhileStarting) onHangup();
    log.info('appliance running', { role: config.role, segments: config.segments.length, status: app!.statusFile });
    if (stopSignal === undefined) await new Promise<void>((resolve) => { wake = resolve; });
    log.info('stopping', { signal: stopSignal });
    process.off('SIGHUP', onHangup);
    await service.stop();
    log.info('stopped');
    return 0;
  },
});

/** A segment's backing in a few characters: `vlan 110 on eth1`, `access eth2`, `-`. */
function backingText(g: ApplianceStatus['segments'][number]): string {
  const b = g.backing;
  if (!b) return '-';
  return b.kind === 'vlan' ? `vlan ${b.vlan} on ${b.trunk}` : `access ${b.interface}`;
}

/** Renders an appliance status as a short table for people. */
export function formatStatus(s: ApplianceStatus): string {
  const rows = s.segments.map((g) =>
    `  ${String(g.id).padStart(4)}  ${g.name.padEnd(14)} ${g.bridge.padEnd(11)} ${g.tap.padEnd(12)} ${backingText(g).padEnd(22)} ` +
    `${String(g.local.rxFrames).padStart(9)} ${String(g.local.txFrames).padStart(9)}`);
  const trunks = s.trunks.map((t) => {
    const drops = Object.entries(t.drops).filter(([, n]) => n > 0).map(([why, n]) => `${why} ${n}`).join(', ');
    return `  trunk ${t.trunk} (${t.implementation} VLANs ${t.vlans.join(',')}): rx ${t.rxFrames}, tx ${t.txFrames}, dropped: ${drops || 'none'}`;
  });
  return [
    `appliance ${s.name} (role ${s.role}, pid ${s.pid}, up since ${s.startedAt})`,
    `  ${'seg'.padStart(4)}  ${'network'.padEnd(14)} ${'bridge'.padEnd(11)} ${'local port'.padEnd(12)} ${'backing'.padEnd(22)} ${'rx frames'.padStart(9)} ${'tx frames'.padStart(9)}`,
    ...rows,
    ...trunks,
  ].join('\n');
}

register({
  path: ['appliance', 'status'],
  summary: "print a running appliance's status",
  usage: 'nea appliance status [--state-dir DIR] [--json]',
  run(args) {
    const v = parse(args, { 'state-dir': { type: 'string' }, json: { type: 'boolean' } });
    const stateDir = typeof v['state-dir'] === 'string' ? v['state-dir'] : DEFAULT_STATE_DIR;
    let text: string;
    try {
      text = readFileSync(join(stateDir, 'status.json'), 'utf8');
    } catch {
      throw new Error(`no appliance status in ${stateDir}: is \`nea appliance run --state-dir ${stateDir}\` running?`);
    }
    console.log(v.json ? text.trimEnd() : formatStatus(JSON.parse(text) as ApplianceStatus));
    return Promise.resolve(0);
  },
});
