/**
 * `nea demo`: start one appliance in a namespace, feed it frames, print its status.
 */
import { runDemo } from '../lab/demo.js';
import { formatStatus, parse } from './appliance.js';
import { register } from './main.js';

register({
  path: ['demo'],
  summary: 'start one appliance in a namespace, feed it frames from a simulated VM, print its status',
  usage: 'nea demo [--json]',
  async run(args) {
    const v = parse(args, { json: { type: 'boolean' } });
    if (!v.json) console.log('nea demo: one tenant appliance, one production segment, a simulated VM\n');
    const { status, framesSent } = await runDemo(v.json ? { write: () => undefined } : process.stdout);
    if (v.json) {
      console.log(JSON.stringify({ framesSent, status }, null, 2));
    } else {
      console.log(`\n${formatStatus(status)}\n`);
      console.log(`The VM sent ${framesSent} frames; the appliance read ${status.segments[0]?.local.rxFrames ?? 0} of them on its local port.`);
      console.log('Everything the demo created has been removed.');
    }
    return 0;
  },
});
