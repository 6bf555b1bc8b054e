/**
 * The probe agent: a short-lived process that reads an array of checks
 * (probe.ts `Check`) as JSON on stdin, runs them from their namespaces and
 * prints the results as JSON on stdout. Exit code 0 unless the input is
 * unreadable.
 */
import { runChecks, type Check } from './probe.js';

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d: string) => { input += d; });
process.stdin.on('end', () => {
  let checks: Check[];
  try {
    checks = JSON.parse(input) as Check[];
  } catch (e) {
    process.stderr.write(`probe agent: input is not JSON: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(2);
  }
  runChecks(checks).then((r) => {
    process.stdout.write(JSON.stringify(r));
    process.exit(0);
  }, (e: unknown) => {
    process.stderr.write(`probe agent: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
});
