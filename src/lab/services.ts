/**
 * `nea lab serve`: one process serving the identity service (vm-service.ts)
 * of many lab hosts, each inside its own namespace: the production VMs of
 * every tenant and the internet host. Config: a JSON array of
 * `{ "netns": NAME, "name": VM, "tenant": T, "site": "production" }`.
 * Writes `{ pid, serving }` to the status file once all listen.
 */
import type { Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../shared/atomic-file.js';
import { ValidationError } from '../shared/errors.js';
import { closeServer, serveIdentity, type VmIdentity } from './vm-service.js';

export type ServiceSpec = VmIdentity & { netns: string };

export function loadServices(file: string): ServiceSpec[] {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ValidationError(`cannot read services ${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!Array.isArray(raw)) throw new ValidationError(`${file}: must be an array`);
  return raw.map((r: unknown, i) => {
    const o = r as Record<string, unknown>;
    if (typeof o.netns !== 'string' || typeof o.name !== 'string' || typeof o.tenant !== 'string' || !['production', 'cloud', 'internet'].includes(o.site as string)) {
      throw new ValidationError(`${file}: [${i}]: must be { netns, name, tenant, site }`);
    }
    return { netns: o.netns, name: o.name, tenant: o.tenant, site: o.site as ServiceSpec['site'] };
  });
}

/** Serves every spec; resolves with a function that closes them all. */
export async function serveAll(specs: readonly ServiceSpec[], statusFile?: string): Promise<() => Promise<void>> {
  const servers: Server[] = [];
  for (const s of specs) servers.push(await serveIdentity(s.netns, { name: s.name, tenant: s.tenant, site: s.site }));
  if (statusFile !== undefined) writeFileAtomic(statusFile, JSON.stringify({ pid: process.pid, serving: servers.length }) + '\n', 0o644, { durable: false });
  return async () => { await Promise.all(servers.map(closeServer)); };
}
