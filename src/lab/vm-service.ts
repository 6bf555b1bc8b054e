/**
 * The lab VMs' tiny HTTP service: `GET /` answers JSON with who answered
 * (VM name, tenant, site) and the client address it saw, so a reachability
 * check knows whether it reached the production VM or its replica, and
 * whether a public IP rule or SNAT changed the source on the way.
 *
 * One process serves many VMs: each server's listening socket is created
 * while the thread is inside the VM's namespace (wildcard address, so the
 * socket is bound synchronously), and stays there.
 */
import { createServer, type Server } from 'node:http';
import { withNetns } from '../netconfig/netns.js';

/** TCP port of the identity service. */
export const VM_HTTP_PORT = 80;

export type Site = 'production' | 'cloud' | 'internet';

export interface VmIdentity {
  name: string;
  tenant: string;
  site: Site;
}

/** What `GET /` answers. */
export interface IdentityAnswer extends VmIdentity {
  /** The client's address as this VM saw it. */
  client: string;
}

/** Serves `identity` on TCP `port` of every address of namespace `netns`; resolves once listening. */
export async function serveIdentity(netns: string | undefined, identity: VmIdentity, port = VM_HTTP_PORT): Promise<Server> {
  const server = createServer((req, res) => {
    const client = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    const body = JSON.stringify({ ...identity, client } satisfies IdentityAnswer) + '\n';
    res.writeHead(req.url === '/' ? 200 : 404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.once('listening', () => { server.off('error', reject); resolve(); });
    withNetns(netns, () => { server.listen(port); });
  });
  return server;
}

/** Closes a server and the connections it still holds. */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => { resolve(); });
    server.closeAllConnections();
  });
}
