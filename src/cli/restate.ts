import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline/promises';
import type { TaskEvent } from '../../machines/task.machine.js';
import { commandKeyOf, flagLayer } from '../config/flags.js';
import { loadConfig } from '../config/load.js';
import type { ObraConfig } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import type { StatusLine } from '../core/status-line.js';
import { RestateClient, RestateUnreachable, urlsText } from '../hosts/restate/client.js';
import type { QueueLine, RemoteRun } from '../hosts/restate/model.js';
import type { RestateTask } from '../hosts/restate/submit.js';
import type { RaceFile } from '../persisted/race-file.js';
import type { RaceSpec } from '../race/race-submit.js';
import { configFrom, type CommonFlags } from './config-from.js';

/**
 * The CLI on the Restate engine (`engine: restate`, or `--engine restate`): `obra restate up`, `obra worker`,
 * and `submit`, `status`, `answer`, `pause`, `cancel` against Restate instead of a store folder.
 */

const urlsOf = (config: ObraConfig) => ({ ingressUrl: config.restate.ingress_url, adminUrl: config.restate.admin_url });

const isLoopback = (url: string) => ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(url).hostname);

/** The port of the config's first URL (a loopback one), to start the local server on what the config says. */
function portOf(urls: string[], what: string): number {
  const url = urls[0]!;
  if (!isLoopback(url)) throw new UserError(`restate.${what} is ${url}: \`obra restate up\` starts a server on this machine only (127.0.0.1) — pass --port / --admin-port, or point restate.${what} at 127.0.0.1`);
  return Number(new URL(url).port) || 80;
}

export interface RestateUpFlags extends CommonFlags {
  data?: string;
  port?: number;
  adminPort?: number;
  nodePort?: number;
  install?: boolean;
}

/** `obra restate up`: a local single-node Restate server (data under the store), until Ctrl-C. */
export async function restateUp(flags: RestateUpFlags): Promise<void> {
  const config = configFrom(flags);
  const { startLocalRestate } = await import('../hosts/restate/server.js');
  const dataDir = resolve(flags.data ?? resolve(config.store.dir, 'restate'));
  const bin = await restateServerBinary(Boolean(flags.install));
  const server = await startLocalRestate({
    dataDir,
    bin,
    ingressPort: flags.port ?? portOf(config.restate.ingress_url, 'ingress_url'),
    adminPort: flags.adminPort ?? portOf(config.restate.admin_url, 'admin_url'),
    nodePort: flags.nodePort,
    identity: true,
  });
  process.stdout.write(
    [
      `Restate is up (data in ${dataDir}).`,
      `  ingress  ${server.ingressUrl}`,
      `  admin    ${server.adminUrl}   (its UI: ${server.adminUrl}/ui)`,
      `  identity ${server.identityKey}   (workers on this store check calls against it; elsewhere: restate.identity_keys)`,
      'Next, in other terminals: `obra worker` (one or more), `obra submit --engine restate --task "..."`, `obra status --engine restate`.',
      'Ctrl-C stops the server; the tasks are kept in its data and go on at the next `obra restate up`.',
      '',
    ].join('\n'),
  );
  await new Promise<void>((done) => {
    const stop = () => void server.stop().then(done);
    // (Its server dies with this process even on SIGKILL: it is started under a parent-death signal.)
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    server.process.once('exit', (code) => {
      process.stderr.write(`obra: the Restate server stopped (exit ${code ?? 'signal'})\n`);
      done();
    });
  });
}

/**
 * The server's binary: found, or installed into Obra's cache (as scripts/install-restate-server.mjs does) with
 * --install, or when the person at the terminal says yes.
 */
async function restateServerBinary(install: boolean): Promise<string> {
  const { findRestateServer, installRestateServer, restateServerCache, RESTATE_SERVER_VERSION } = await import('../hosts/restate/server.js');
  const found = findRestateServer();
  if (found) return found;
  const cache = restateServerCache();
  if (!install && !(process.stdin.isTTY && process.stderr.isTTY && (await confirm(`The Restate server ${RESTATE_SERVER_VERSION} is not installed. Install it into ${cache} now (npm, about 216 MB)? [y/N] `)))) {
    throw new UserError(`the Restate server is not installed — run \`obra restate up --install\` (npm installs @restatedev/restate-server@${RESTATE_SERVER_VERSION} into ${cache}), or set OBRA_RESTATE_SERVER to its binary`);
  }
  process.stderr.write(`obra: installing the Restate server ${RESTATE_SERVER_VERSION} into ${cache} (npm, about 216 MB)...\n`);
  const { bin, installedMs } = await installRestateServer();
  process.stderr.write(installedMs ? `obra: installed in ${(installedMs / 1000).toFixed(1)} s\n` : `obra: it was installed already (${bin})\n`);
  return bin;
}

async function confirm(question: string): Promise<boolean> {
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await prompt.question(question)).trim());
  } finally {
    prompt.close();
  }
}

/** `obra worker`: serves Obra's services to Restate and drives its tasks, N at a time, until Ctrl-C. */
export async function restateWorker(flags: CommonFlags & { concurrency?: number; name?: string; port?: number; bind?: string; advertise?: string; workDir?: string; parkAfter?: number; insecure?: boolean }): Promise<void> {
  const { config, sources } = loadConfig({ file: flags.config ?? null, flags: flagLayer(flags) });
  const [{ startRestateWorker }, { BUILT_KINDS, configuredCommand }] = await Promise.all([import('../hosts/restate/worker.js'), import('../agents/agent-for.js')]);
  const say = (line: string) => {
    if (!flags.quiet) process.stderr.write(`${line}\n`);
  };
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (++interrupts > 1) process.exit(130);
    say(`obra worker: ${signal} — stopping; its tasks are let go (another worker, or the next one, takes them on)`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const identityKeys = config.restate.identity_keys.length ? config.restate.identity_keys : localIdentityKey(config);
  const concurrency = flags.concurrency ?? config.queue.concurrency;
  const worker = await startRestateWorker({
    ...urlsOf(config),
    identityKeys,
    concurrency,
    leaseMs: config.restate.lease_seconds * 1000,
    name: flags.name,
    port: flags.port,
    bind: flags.bind,
    advertisedUrl: flags.advertise,
    workDir: flags.workDir,
    insecure: flags.insecure,
    // This machine's agents, where its config names them (--agent-bin, OBRA_<KIND>_BIN, its file, --set): the
    // path a task was submitted with is the submitting machine's.
    agentCommand: Object.fromEntries(BUILT_KINDS.filter((kind) => sources[commandKeyOf(kind)] !== 'default').map((kind) => [kind, configuredCommand(config, kind)])),
    parkAfterMs: flags.parkAfter === undefined ? undefined : flags.parkAfter * 1000,
    signal: controller.signal,
    onEvent: (runId, event) => {
      switch (event.type) {
        case 'registered':
          return say(`obra worker: serving Obra's services at ${event.uri} (registered with ${urlsText(config.restate.admin_url)})`);
        case 'claimed':
          return say(`${runId} ${event.resumed ? 'taken on (epoch ' + event.epoch + ')' : 'started'}`);
        case 'iteration-done':
          return say(`${runId} iteration ${event.record.index}: ${event.record.decision} — ${event.record.reason}`);
        case 'settled':
          return say(`${runId} ${event.status}: ${event.reason}`);
        case 'lost':
          return say(`${runId} let go: ${event.reason}`);
        case 'agent-progress':
          if (event.progress.kind === 'earlierCallStopped') say(`${runId} WARNING ${event.progress.message}`);
          return;
        case 'race-decided':
          return say(`race ${event.raceId} decided: ${event.winner ? `winner ${event.winner}` : 'no winner'} — ${event.reasons.join('; ')}`);
        case 'parked':
          return say(`${runId} parked until ${new Date(event.until).toISOString()} (the usage limit's reset); a Restate timer queues it again then`);
      }
    },
  });
  say(`obra worker: taking tasks from ${urlsText(config.restate.ingress_url)}, ${concurrency} at a time (Ctrl-C to stop)${identityKeys.length ? '; only calls signed by the server are accepted' : ''}`);
  await worker.done;
}

/** The key of the `obra restate up` of this store, when the worker is pointed at a server on this machine. */
function localIdentityKey(config: ObraConfig): string[] {
  const file = resolve(config.store.dir, 'restate', 'identity.pub');
  return config.restate.admin_url.every(isLoopback) && existsSync(file) ? [readFileSync(file, 'utf8').trim()] : [];
}

/** `obra submit --engine restate`: a race (`agents`, `attempts`) is queued as one task per attempt, as locally. */
export async function submitRemote(tasks: (RestateTask & RaceSpec)[], config: ObraConfig): Promise<{ runIds: string[]; races: { raceId: string; runIds: string[] }[] }> {
  const [{ submitToRestate }, { expandRaces }, { newRunId }] = await Promise.all([import('../hosts/restate/submit.js'), import('../race/race-submit.js'), import('../hosts/files/local.js')]);
  // Each attempt needs a branch of its own (as a local race's worktrees): a --repo folder would be one all share.
  for (const [i, t] of tasks.entries()) {
    if ((t.agents?.length ?? 1) * (t.attempts ?? 1) > 1 && !t.repoUrl) throw new UserError(`${tasks.length > 1 ? `task ${i + 1}: ` : ''}a race on Restate needs --repo-url: each attempt works on a branch of its own (obra/<runId>), and a --repo folder would be shared by all of them`);
  }
  const expanded = expandRaces(tasks, newRunId);
  return { runIds: await submitToRestate(expanded.tasks, { ...urlsOf(config), config }), races: expanded.races };
}

/** `obra status --engine restate`: a line per task, from the queue's object (`--watch` follows them). */
export async function statusRemote(flags: { config?: string; json?: boolean; watch?: boolean; set?: string[] }): Promise<void> {
  const config = configFrom({ ...flags, engine: 'restate' });
  const client = new RestateClient(urlsOf(config));
  const [{ showLines, withoutAge, racesText }, { statusLinesOf }, { attemptEnded }] = await Promise.all([import('./status.js'), import('../hosts/restate/status-line.js'), import('../race/decision.js')]);
  // A dead worker and an unreachable node are told apart: each has its own line.
  await client.checkServing();
  if (!flags.json) for (const down of await client.nodesDown()) process.stderr.write(`obra: note: Restate's node ${down.url} does not answer (${down.cause}); the others do\n`);
  const read = async () => {
    const queue = await client.queue<QueueLine[]>('list');
    // A running task's line is written when its status changes: its iterations and cost are asked of the task.
    await Promise.all(
      queue
        .filter((l) => l.status === 'running')
        .map(async (l) => {
          const run = await client.task<RemoteRun | null>(l.runId, 'get');
          if (run) Object.assign(l, { iterations: run.iterations, totalCostUsd: run.totalCostUsd, updatedAt: run.updatedAt });
        }),
    );
    // The shape of the local engine's lines (one type, src/core/status-line.ts).
    return statusLinesOf(queue, Date.now(), await raceDecisions(queue));
  };
  // A race's decision never changes once kept: asked for once (--watch looks again and again).
  const decisions = new Map<string, RaceFile>();
  const raceDecisions = async (queue: QueueLine[]) => {
    const races = new Map<string, QueueLine[]>();
    for (const line of queue) if (line.race && !decisions.has(line.race.id)) races.set(line.race.id, [...(races.get(line.race.id) ?? []), line]);
    await Promise.all(
      [...races].map(async ([raceId, attempts]) => {
        // Asked only once every attempt has ended; `decide` reads the one kept, or makes it (each attempt's end
        // sends one too: this one is for a race whose message has not been handled yet).
        if (attempts.length < attempts[0]!.race!.of || !attempts.every((a) => attemptEnded(a.status))) return;
        // (Not answered: the attempts show undecided, and the next look asks again.)
        const decided = await client.decideRace(raceId).catch(() => null);
        if (decided) decisions.set(raceId, decided.decision);
      }),
    );
    return decisions;
  };
  // The table, then each race's attempts side by side with the ranking (as the local status shows them).
  const table = (lines: StatusLine[]) => remoteTable(lines) + racesText(lines, winnerBranch);
  await showLines({ read, table, row: remoteRow, steady: withoutAge }, flags);
}

const REMOTE_HEADER = ['RUN', 'STATUS', 'IT', 'COST', 'TOKENS', 'WORKER', 'TASK / REASON'];

function remoteRow(l: StatusLine): string[] {
  // Restate's queue keeps no token sums: n/a (as null in --json).
  return [l.runId, l.status, String(l.iteration), `$${l.costUsd.toFixed(2)}`, 'n/a', l.worker ?? '-', (l.reason || l.task).slice(0, 70)];
}

function remoteTable(lines: StatusLine[]): string {
  if (!lines.length) return 'No tasks yet. Queue one with: obra submit --engine restate --task "..."\n';
  const rows = [REMOTE_HEADER, ...lines.map(remoteRow)];
  const widths = REMOTE_HEADER.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => `${r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')}\n`).join('');
}

/** On Restate a race's winner is its branch in the tasks' --repo-url repository (each attempt pushes obra/<runId>). */
const winnerBranch = (_raceId: string, winner: StatusLine) => `its branch obra/${winner.runId}`;

/** How long an answer, pause or cancel waits for the worker that serves the task's object. */
const SEND_TIMEOUT_MS = 15_000;

/** `obra answer|pause|cancel --engine restate`: the event goes to the task's object (live, or for its next drive). */
export async function sendRemote(runId: string, event: TaskEvent, config: ObraConfig, flags: { json?: boolean }): Promise<void> {
  const client = new RestateClient(urlsOf(config));
  // Checked first: sent without a worker, the event would wait in Restate and be applied later, after this
  // command had reported it failed.
  await client.checkServing();
  // The worker may still die before it answers: then the event is taken back rather than left to be applied later.
  const idempotencyKey = `obra-${event.type.toLowerCase()}-${randomUUID()}`;
  const outcome = await client.task<{ status: string; delivered: string; why?: string }>(runId, 'send', event, { idempotencyKey, timeoutMs: SEND_TIMEOUT_MS }).catch(async (error: unknown) => {
    if ((error as { status?: number }).status === 404) throw new UserError(`no run "${runId}" in Restate at ${urlsText(config.restate.ingress_url)}`);
    if (error instanceof RestateUnreachable && (await client.withdraw(idempotencyKey).catch(() => false))) {
      throw new UserError(`${event.type} was not delivered to run ${runId}: no worker answered within ${SEND_TIMEOUT_MS / 1000} s, and it was taken back from Restate — check \`obra worker\`, then try again`, 1);
    }
    throw error;
  });
  const message =
    outcome.delivered === 'live' ? `${event.type} sent to run ${runId}; its worker acts on it within a few seconds`
    : outcome.delivered === 'queued' && event.type === 'RESUMED' ? `run ${runId} is queued again; the next worker to take it goes on from where it stopped`
    : outcome.delivered === 'queued' ? `${event.type} kept for run ${runId}; the next worker to take it goes on with it`
    : outcome.delivered === 'ended' ? `run ${runId} is ${outcome.status}`
    : `run ${runId} cannot take ${event.type}: ${outcome.why}`;
  if (flags.json) process.stdout.write(`${JSON.stringify({ runId, ...outcome, message })}\n`);
  else process.stdout.write(`${message}\n`);
  if (outcome.delivered === 'refused') process.exitCode = 2;
}
