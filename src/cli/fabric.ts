/**
 * `nea lab fabric`: run the lab's user-space VLAN switch fabric (the SP's or
 * a site's physical switch, src/lab/fabric) until SIGTERM.
 */
import { serveFabricControl } from '../lab/fabric/control.js';
import { Fabric, loadFabricConfig } from '../lab/fabric/fabric.js';
import { writeFileAtomic } from '../shared/atomic-file.js';
import { createLogger } from '../shared/log.js';
import { parse } from './appliance.js';
import { register, UsageError } from './main.js';

register({
  path: ['lab', 'fabric'],
  summary: 'run a lab VLAN switch fabric (access and trunk ports as TAPs in hosts\' namespaces; ports added at run time through --control) until SIGTERM',
  usage: 'nea lab fabric --config FILE [--status FILE] [--control SOCKET]',
  async run(args) {
    const v = parse(args, { config: { type: 'string' }, status: { type: 'string' }, control: { type: 'string' } });
    if (typeof v.config !== 'string') throw new UsageError('--config FILE is required');
    const log = createLogger().child('fabric');
    const fabric = new Fabric(loadFabricConfig(v.config));
    fabric.start();
    const statusFile = typeof v.status === 'string' ? v.status : undefined;
    const write = (): void => {
      if (statusFile) writeFileAtomic(statusFile, JSON.stringify(fabric.status(), null, 2) + '\n', 0o644, { durable: false });
    };
    write();
    const timer = setInterval(write, 500);
    // --control: ports plugged and unplugged at run time (src/lab/fabric/control.ts).
    const control = typeof v.control === 'string'
      ? await serveFabricControl(fabric, v.control, (line, answer) => {
        if (answer.ok && answer.changed === true) log.info('port change', { request: line });
        else if (!answer.ok) log.warn('control request refused', { request: line, error: answer.error });
      })
      : undefined;
    log.info('fabric running', { switches: fabric.status().switches.map((s) => `${s.name}:${s.ports.length}`).join(',') });
    await new Promise<void>((resolve) => {
      process.once('SIGTERM', () => { resolve(); });
      process.once('SIGINT', () => { resolve(); });
    });
    clearInterval(timer);
    control?.close();
    write();
    fabric.stop();
    log.info('fabric stopped');
    return 0;
  },
});
