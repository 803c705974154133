import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { RestateClient } from '../../src/hosts/restate/client.js';
import type { QueueLine, RemoteRun } from '../../src/hosts/restate/model.js';
import { findRestateServer, INSTALL_COMMAND, startLocalRestate, type LocalRestate } from '../../src/hosts/restate/server.js';
import type { IterationRecord } from '../../src/core/types.js';
import type { FakeLogEntry } from '../agents/fake-env.js';
import { CLI, FAKE_CLAUDE, obra } from '../helpers/cli.js';

/**
 * Real Restate servers for the tests, started and stopped by the tests themselves on loopback. Without the
 * server installed a suite is skipped with a visible line — except under CI=true, where it fails.
 */
export function restateAvailable(suite: string): boolean {
  if (findRestateServer()) return true;
  const line = `${suite}: the Restate server is not installed (${INSTALL_COMMAND}, or node scripts/install-restate-server.mjs)`;
  if (process.env.CI === 'true') throw new Error(`${line} — CI must run this suite`);
  console.warn(`SKIPPED ${line}`);
  return false;
}

export interface Cluster {
  root: string;
  server: LocalRestate;
  client: RestateClient;
  /** Flags that point the CLI at this server. */
  flags: string[];
  log: string;
}

export async function startCluster(prefix: string): Promise<Cluster> {
  const root = mkdtempSync(join(tmpdir(), prefix));
  // The server signs its calls, and the workers check them (as with `obra restate up`).
  const server = await startLocalRestate({ dataDir: join(root, 'restate'), identity: true });
  return {
    root,
    server,
    client: new RestateClient(server),
    flags: ['--set', `restate.ingress_url=${server.ingressUrl}`, '--set', `restate.admin_url=${server.adminUrl}`, '--set', `restate.identity_keys=[${server.identityKey}]`],
    log: join(root, 'fake-claude.log'),
  };
}

/** A server for the suite (started before its tests, stopped after), and the workers its tests start (killed after). */
export function clusterPerSuite(prefix: string): () => { cluster: Cluster; workers: ResultPromise[] } {
  let cluster: Cluster | undefined;
  const workers: ResultPromise[] = [];
  beforeAll(async () => {
    cluster = await startCluster(prefix);
  }, 90_000);
  afterAll(async () => {
    for (const w of workers) w.kill('SIGKILL');
    await cluster?.server.stop();
  });
  return () => ({ cluster: cluster!, workers });
}

/**
 * A `claude` for one kind of task: fake-claude with its own script (the run keeps the binary it was submitted
 * with); or another fake (`fake`: fixtures/fake-codex, ...) with its own.
 */
export function agentBin(cluster: Cluster, name: string, env: Record<string, string>, fake = FAKE_CLAUDE): string {
  const bin = join(cluster.root, `${basename(fake).replace(/^fake-/, '')}-${name}`);
  const exports = Object.entries(env).map(([k, v]) => `export ${k}='${v.replaceAll("'", "'\\''")}'`);
  writeFileSync(bin, ['#!/bin/sh', ...exports, `exec ${fake} "$@"`, ''].join('\n'));
  chmodSync(bin, 0o755);
  return bin;
}

/** An `obra worker` process with a home of its own (its own transcripts, as on another machine). */
export function startWorker(cluster: Cluster, name: string, extra: string[] = []): ResultPromise {
  const home = join(cluster.root, `home-${name}`);
  mkdirSync(home, { recursive: true });
  return execa('node', [CLI, 'worker', '--name', name, ...cluster.flags, ...extra], {
    cwd: cluster.root,
    env: { HOME: home, CLAUDE_CONFIG_DIR: join(home, '.claude'), FAKE_CLAUDE_LOG: cluster.log, NO_COLOR: '1' },
    extendEnv: true,
    reject: false,
    all: true,
  });
}

/** Resolves once the worker says it takes tasks (it has registered); rejects with what it said if it ends first. */
export function workerReady(worker: ResultPromise, timeoutMs = 60_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let said = '';
    const timer = setTimeout(() => reject(new Error(`the worker did not start within ${timeoutMs} ms: ${said}`)), timeoutMs);
    worker.all?.on('data', (chunk: Buffer) => {
      said += chunk.toString();
      if (said.includes('taking tasks from')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void worker.then((r) => {
      clearTimeout(timer);
      reject(new Error(`the worker ended (exit ${r.exitCode}): ${said}`));
    });
  });
}

export async function submit(cluster: Cluster, task: string, bin: string, extra: string[] = []): Promise<string> {
  const where = extra.includes('--repo-url') ? [] : ['--repo', mkdtempSync(join(cluster.root, 'task-'))];
  const result = await obra(['submit', '--engine', 'restate', '--task', task, ...where, '--set', `agent.local.command=${bin}`, ...cluster.flags, ...extra], { cwd: cluster.root });
  if (result.exitCode !== 0) throw new Error(`obra submit failed: ${result.stderr}`);
  return result.stdout.trim();
}

export const runOf = (cluster: Cluster, runId: string) => cluster.client.task<RemoteRun>(runId, 'get');
export const everything = (cluster: Cluster, runId: string) => cluster.client.task<{ run: RemoteRun; lines: string[]; iterations: IterationRecord[] }>(runId, 'everything');
export const queueLines = (cluster: Cluster) => cluster.client.queue<QueueLine[]>('list');

/** Polls until `done` holds (or fails after `timeoutMs`, saying what was last seen). */
export async function until<T>(what: string, probe: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await probe();
    if (done(last)) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  // A run's status first (its config would fill the message).
  const seen = last && typeof last === 'object' && 'status' in last ? JSON.stringify(last, ['runId', 'status', 'reason', 'owner', 'worker', 'epoch', 'iterations', 'inbox', 'type', 'startEvent', 'workers', 'journal', 'chunks', 'lastSeq']) : JSON.stringify(last);
  throw new Error(`timed out waiting for ${what}; last seen: ${seen?.slice(0, 2000)}`);
}

export type FakeCall = FakeLogEntry;

export function fakeCalls(cluster: Cluster): FakeCall[] {
  if (!existsSync(cluster.log)) return [];
  return readFileSync(cluster.log, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as FakeCall);
}

/** The session a call worked on (its --session-id or --resume). */
export function sessionOf(call: FakeCall): string | null {
  const at = call.argv.findIndex((a) => a === '--session-id' || a === '--resume');
  return at >= 0 ? call.argv[at + 1]! : null;
}

/** A bare repository with one commit on main, the remote a moving task's branch is pushed to. */
export async function bareRepository(root: string): Promise<string> {
  const seed = mkdtempSync(join(root, 'seed-'));
  const remote = join(root, 'remote.git');
  const git = (cwd: string, args: string[]) => execa('git', ['-c', 'user.name=Test', '-c', 'user.email=test@localhost', ...args], { cwd });
  await git(seed, ['init', '--quiet', '--initial-branch=main']);
  writeFileSync(join(seed, 'README.md'), '# parser\n');
  await git(seed, ['add', '.']);
  await git(seed, ['commit', '--quiet', '-m', 'start']);
  await git(root, ['clone', '--quiet', '--bare', seed, remote]);
  return remote;
}
