import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer, type Server } from 'node:net';
import { arch, platform } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { UserError } from '../../core/errors.js';
import { ensureIdentityKey } from './identity.js';
import { describeHolder, portHeldBy, portHolder, portIsFree } from './port-holder.js';

/**
 * A local Restate server started from the npm package `@restatedev/restate-server` (its binary ships in the
 * platform package; nothing is downloaded at run time). The server is not one of Obra's dependencies — it is a
 * 216 MB binary under the BSL 1.1 that single-machine users never need — so it is looked for, in order:
 * OBRA_RESTATE_SERVER, the project's node_modules, Obra's own `.cache/restate-server/<version>/` (where
 * `scripts/install-restate-server.mjs` puts it for the tests), and `restate-server` on PATH.
 */

export const RESTATE_SERVER_VERSION = '1.7.12';
export const INSTALL_COMMAND = `npm install --no-save @restatedev/restate-server@${RESTATE_SERVER_VERSION}`;

const platformPackage = () => `@restatedev/restate-server-${platform()}-${arch()}`;

export function findRestateServer(): string | null {
  const fromEnv = process.env.OBRA_RESTATE_SERVER;
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : null;
  const roots = [process.cwd(), obraRoot()];
  for (const root of roots) {
    try {
      const bin = join(dirname(createRequire(join(root, 'package.json')).resolve(`${platformPackage()}/package.json`)), 'bin', 'restate-server');
      if (existsSync(bin)) return bin;
    } catch {
      // not installed there
    }
    const cached = join(root, '.cache', 'restate-server', RESTATE_SERVER_VERSION, 'node_modules', platformPackage(), 'bin', 'restate-server');
    if (existsSync(cached)) return cached;
  }
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const bin = join(dir, 'restate-server');
    if (dir && existsSync(bin)) return bin;
  }
  return null;
}

/** Where scripts/install-restate-server.mjs installs the server (and findRestateServer looks). */
export function restateServerCache(): string {
  return join(obraRoot(), '.cache', 'restate-server', RESTATE_SERVER_VERSION);
}

/** Installs the server with scripts/install-restate-server.mjs (the one way it is installed), into restateServerCache(). */
export async function installRestateServer(): Promise<{ bin: string; installedMs: number }> {
  const script = pathToFileURL(join(obraRoot(), 'scripts', 'install-restate-server.mjs')).href;
  const { ensureRestateServer } = (await import(script)) as { ensureRestateServer: () => { bin: string; installedMs: number } };
  try {
    return ensureRestateServer();
  } catch (error) {
    throw new UserError(`${(error as Error).message} — check the network and npm's registry, or install it by hand: ${INSTALL_COMMAND}`);
  }
}

/** Obra's own folder (the package.json named obra above this module, from src/ or dist/src/). */
function obraRoot(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dirname(dir) !== dir; dir = dirname(dir)) {
    try {
      if ((JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string }).name === 'obra') return dir;
    } catch {
      // no package.json here
    }
  }
  return process.cwd();
}

export interface LocalRestate {
  ingressUrl: string;
  adminUrl: string;
  /** With `identity`: the public key workers check the calls against. */
  identityKey: string | null;
  process: ChildProcess;
  /** Stops the server (SIGTERM, then SIGKILL after a grace period). */
  stop(): Promise<void>;
}

export interface LocalRestateOptions {
  /** The server's data (its base dir): kept between starts, so tasks survive a restart of the server. */
  dataDir: string;
  /** The ports (0 or not given: a free one). A port that is taken is refused with what holds it. */
  ingressPort?: number;
  adminPort?: number;
  nodePort?: number;
  /** Extra TOML for the node (a cluster's metadata addresses, replication...). */
  toml?: string;
  nodeName?: string;
  /** The server's output goes here (default: `<dataDir>/server.log`). */
  logFile?: string;
  /** Sign every call to the workers with the key pair in `<dataDir>/identity.pem` (made when missing). */
  identity?: boolean;
  /** The binary (default: the one findRestateServer finds). */
  bin?: string;
}

/** The flag of `obra restate up` that moves each port, for the message when one is taken. */
const PORT_FLAGS = { ingress: '--port', admin: '--admin-port', node: '--node-port' } as const;
type PortRole = keyof typeof PORT_FLAGS;

/**
 * Starts a single-node server on loopback and waits until its admin API and ingress answer. Ports not given are
 * free ones; when one of them is taken between the look and the server's bind, it starts again on others. A port
 * given that is taken is refused at once, with what holds it: another server there would answer the readiness
 * probes in this one's place.
 */
export async function startLocalRestate(options: LocalRestateOptions): Promise<LocalRestate> {
  const bin = options.bin ?? findRestateServer();
  if (!bin) throw new UserError(`the Restate server is not installed — install it with: ${INSTALL_COMMAND} (or set OBRA_RESTATE_SERVER to its binary)`);
  mkdirSync(options.dataDir, { recursive: true });
  const given: Record<PortRole, number | undefined> = { ingress: options.ingressPort || undefined, admin: options.adminPort || undefined, node: options.nodePort || undefined };
  for (const role of Object.keys(given) as PortRole[]) {
    const port = given[role];
    if (port !== undefined && !(await portIsFree(port))) throw portTaken(port, role);
  }
  const chosen = Object.values(given).some((port) => port === undefined);
  for (let attempt = 1; ; attempt++) {
    const [a, b, c] = (await freePorts(3)) as [number, number, number];
    try {
      return await startOnce(bin, { ...options, ingressPort: given.ingress ?? a, adminPort: given.admin ?? b, nodePort: given.node ?? c });
    } catch (error) {
      if (!(chosen && attempt < 3 && error instanceof PortTaken)) throw error;
    }
  }
}

class PortTaken extends UserError {}

function portTaken(port: number, role: PortRole): PortTaken {
  return new PortTaken(`port ${port} is taken (by ${describeHolder(portHolder(port))}) — stop it or use ${PORT_FLAGS[role]}`);
}

/** `setpriv --pdeathsig KILL` (util-linux): the kernel kills the server when the process that started it dies, SIGKILL included. */
function deathSignalWrapper(): string | null {
  if (platform() !== 'linux') return null;
  for (const dir of ['/usr/bin', '/bin', ...(process.env.PATH ?? '').split(':')]) {
    const bin = join(dir, 'setpriv');
    if (dir && existsSync(bin)) return bin;
  }
  return null;
}

async function startOnce(bin: string, options: LocalRestateOptions & { ingressPort: number; adminPort: number; nodePort: number }): Promise<LocalRestate> {
  const { ingressPort, adminPort, nodePort } = options;
  const config = join(options.dataDir, 'obra-restate.toml');
  const identityPem = options.identity ? join(options.dataDir, 'identity.pem') : null;
  const identityKey = identityPem ? ensureIdentityKey(identityPem) : null;
  if (identityKey) writeFileSync(join(options.dataDir, 'identity.pub'), `${identityKey}\n`);
  writeFileSync(
    config,
    [
      `node-name = "${options.nodeName ?? 'obra-local'}"`,
      `bind-port = ${nodePort}`,
      options.toml ?? '',
      '[admin]',
      `bind-port = ${adminPort}`,
      '[ingress]',
      `bind-port = ${ingressPort}`,
      ...(identityPem ? ['[worker.invoker]', `request-identity-private-key-pem-file = ${JSON.stringify(identityPem)}`] : []),
      '',
    ].join('\n'),
  );
  const logFile = options.logFile ?? join(options.dataDir, 'server.log');
  const log = openSync(logFile, 'a');
  const args = ['--config-file', config, '--base-dir', options.dataDir, '--bind-ip', '127.0.0.1', '--listen-mode', 'tcp', '--no-logo'];
  // setpriv execs the server: the same pid, which dies with this process however this process dies.
  const wrapper = deathSignalWrapper();
  const child = spawn(wrapper ?? bin, wrapper ? ['--pdeathsig', 'KILL', '--', bin, ...args] : args, {
    stdio: ['ignore', log, log],
    env: { ...process.env, RESTATE_DISABLE_TELEMETRY: 'true', DO_NOT_TRACK: '1' },
  });
  const server: LocalRestate = {
    ingressUrl: `http://127.0.0.1:${ingressPort}`,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    identityKey,
    process: child,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
  let exitCode: number | null = null;
  child.once('exit', (code) => (exitCode = code ?? -1));
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (exitCode !== null) {
      const message = `the Restate server stopped at start (exit ${exitCode}); see ${logFile}`;
      if (!/Address in use/.test(readFileSync(logFile, 'utf8').slice(-4000))) throw new UserError(message);
      // Taken between the look and the bind: say by what, when it can be told.
      for (const [role, port] of [['ingress', ingressPort], ['admin', adminPort], ['node', nodePort]] as const) {
        if (portHolder(port)) throw portTaken(port, role);
      }
      throw new PortTaken(message);
    }
    if ((await answers(`${server.adminUrl}/health`)) && (await answers(`${server.ingressUrl}/restate/health`)) && ownsPorts(child, [adminPort, ingressPort])) return server;
    await sleep(100);
  }
  await server.stop();
  throw new UserError(`the Restate server did not answer within 60 s; see ${logFile}`);
}

/**
 * Whether the answers came from this server: it is alive and (where /proc tells) holds the listening sockets.
 * Another server on the same ports would answer the same probes.
 */
function ownsPorts(child: ChildProcess, ports: number[]): boolean {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return false;
  const pid = child.pid;
  return ports.every((port) => portHeldBy(port, pid) !== false);
}

async function answers(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(1_000) });
    return response.ok;
  } catch {
    return false;
  }
}

/** `n` different TCP ports free on 127.0.0.1 right now (all held until all are found, so none repeats). */
export async function freePorts(n: number): Promise<number[]> {
  const probes = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Server>((resolveProbe, reject) => {
          const probe = createServer();
          probe.once('error', reject);
          probe.listen(0, '127.0.0.1', () => resolveProbe(probe));
        }),
    ),
  );
  const ports = probes.map((probe) => (probe.address() as { port: number }).port);
  await Promise.all(probes.map((probe) => new Promise((closed) => probe.close(closed))));
  return ports;
}
