/**
 * `nea lab ...`: the lab (docs/lab.md). `nea lab fabric` is in fabric.ts.
 */
import { loadServices, serveAll } from '../lab/services.js';
import { createLogger } from '../shared/log.js';
import { parse } from './appliance.js';
import { register, UsageError } from './main.js';

register({
  path: ['lab', 'serve'],
  summary: 'serve the lab VMs\' identity service (HTTP :80) inside their namespaces until SIGTERM (started by nea lab up)',
  usage: 'nea lab serve --config FILE [--status FILE]',
  async run(args) {
    const v = parse(args, { config: { type: 'string' }, status: { type: 'string' } });
    if (typeof v.config !== 'string') throw new UsageError('--config FILE is required');
    const log = createLogger().child('lab-serve');
    const specs = loadServices(v.config);
    const close = await serveAll(specs, typeof v.status === 'string' ? v.status : undefined);
    log.info('serving', { hosts: specs.length });
    await new Promise<void>((resolve) => {
      process.once('SIGTERM', () => { resolve(); });
      process.once('SIGINT', () => { resolve(); });
    });
    await close();
    return 0;
  },
});
