/**
 * The `nea` command: parses arguments and dispatches to a subcommand.
 * Each subcommand returns its exit code; errors are printed as one line.
 */
import { readFileSync } from 'node:fs';
import { NeaError } from '../shared/errors.js';

export interface Command {
  /** Words that select the command, e.g. ['appliance', 'run']. */
  readonly path: readonly string[];
  /** One-line summary for `nea help`. */
  readonly summary: string;
  /** Usage line(s) printed by `nea help <command>` and on bad arguments. */
  readonly usage: string;
  run(args: string[]): Promise<number>;
}

const commands: Command[] = [];

/** Registers a subcommand (called by each command module). */
export function register(cmd: Command): void {
  commands.push(cmd);
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function help(): string {
  const width = Math.max(...commands.map((c) => c.path.join(' ').length), 7);
  return [
    'usage: nea <command> [options]',
    '',
    'commands:',
    ...commands.map((c) => `  ${c.path.join(' ').padEnd(width)}  ${c.summary}`),
    `  ${'version'.padEnd(width)}  print the version`,
    '',
    'Run `nea help <command>` for its options.',
  ].join('\n');
}

/** Finds the longest command path that prefixes `argv`. */
export function resolve(argv: readonly string[]): { cmd: Command; rest: string[] } | undefined {
  let best: Command | undefined;
  for (const c of commands) {
    if (c.path.every((w, i) => argv[i] === w) && (!best || c.path.length > best.path.length)) best = c;
  }
  return best ? { cmd: best, rest: argv.slice(best.path.length) } : undefined;
}

export async function main(argv: string[]): Promise<number> {
  await import('./commands.js');
  const [first] = argv;
  if (first === undefined || first === 'help' || first === '--help' || first === '-h') {
    const target = first === 'help' ? resolve(argv.slice(1)) : undefined;
    console.log(target ? `usage: ${target.cmd.usage}` : help());
    return 0;
  }
  if (first === 'version' || first === '--version') {
    console.log(`nea ${version()}`);
    return 0;
  }
  const found = resolve(argv);
  if (!found) {
    console.error(`nea: unknown command '${argv.join(' ')}'\n\n${help()}`);
    return 2;
  }
  try {
    return await found.cmd.run(found.rest);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`nea ${found.cmd.path.join(' ')}: ${e.message}\nusage: ${found.cmd.usage}`);
      return 2;
    }
    console.error(`nea ${found.cmd.path.join(' ')}: ${e instanceof Error ? e.message : String(e)}`);
    if (process.env.NEA_DEBUG && e instanceof Error) console.error(e.stack);
    return 1;
  }
}

/** Bad command-line arguments: printed with the command's usage, exit code 2. */
export class UsageError extends NeaError {
  constructor(message: string) {
    super('USAGE', message);
  }
}
