import './polyfill.js';
import * as restate from '@restatedev/restate-sdk';
import { existsSync } from 'node:fs';
import { createServer, type Http2Server, type Http2Session, type ServerHttp2Stream } from 'node:http2';
import { connect } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TaskEvent, TaskInput } from '../../../machines/task.machine.js';
import type { Agent } from '../../agents/agent.js';
import { agentFromSpec, type AgentCommand } from '../../agents/agent-for.js';
import { configSchema } from '../../config/schema.js';
import { UserError } from '../../core/errors.js';
import type { RunStatus } from '../../core/types.js';
import { systemClock } from '../../engine/clock.js';
import { TaskDrive, type DriveStart } from '../../engine/drive.js';
import type { EngineEvent } from '../../engine/events.js';
import type { EngineHost } from '../../engine/host.js';
import type { RunResult } from '../../engine/run-result.js';
import { restorableSnapshot, runningIterationOf } from '../../persisted/snapshot.js';
import { runChecks } from '../../scoring/checks.js';
import { callsMade, RestateClient, RestateUnreachable, urlsText, type RestateUrls } from './client.js';
import { prepareCheckout, saveToRemote, saveWorkInProgress } from './git-workspace.js';
import { QUEUE_OBJECT, QUEUE_SHARDS, WAITER_OBJECT, type Claimed, type RemoteRun, type WorkWake } from './model.js';
import { RestateRun } from './restate-run.js';
import { OBRA_SERVICES } from './services.js';
import { attemptEnded } from '../../race/decision.js';
import { SessionCarrier } from './session-carrier.js';
import { WorkSavingAgent } from './work-saving-agent.js';
import { expandHome } from './submit.js';

export interface RestateWorkerOptions extends RestateUrls {
  /** Tasks driven at once by this worker. */
  concurrency: number;
  /** How long a task stays this worker's without a renewal (a dead worker's tasks move after this). */
  leaseMs?: number;
  /** This worker's name in the runs' records (default: host and pid). */
  name?: string;
  /** The server's request-identity public keys: calls not signed with one of them are refused. */
  identityKeys?: string[];
  /** Where the services listen for Restate (default: a free port). */
  port?: number;
  /** The address they listen on (default 127.0.0.1; 0.0.0.0 for a Restate on another machine). */
  bind?: string;
  /** The address Restate reaches the services at (default: http://127.0.0.1:<port>). */
  advertisedUrl?: string;
  /** Where this worker keeps the checkouts of tasks that move (`<workDir>/<runId>`; default: config restate.work_dir). */
  workDir?: string;
  /**
   * A task that must wait longer than this for the account's usage limit to reset is let go and parked: a Restate
   * timer queues it again at the reset, and no worker slot is held meanwhile (default 60 s).
   */
  parkAfterMs?: number;
  /** The first pause before the queue is looked at again when an idle wait failed (it doubles, up to idleWaitMs). */
  pollMs?: number;
  /** How long an idle worker's wait for work in Restate lasts before it looks at the queue anyway (default 15 s). */
  idleWaitMs?: number;
  /**
   * This machine's agent binaries (one per kind, from its --agent-bin, OBRA_<KIND>_BIN or config): they win. Without
   * one a task runs the binary it was submitted with when that path exists here, else its kind's configured one.
   */
  agentCommand?: AgentCommand;
  /** Listen beyond loopback without the server's identity keys: anyone who reaches the port may call in. */
  insecure?: boolean;
  /** The agent of a run (default: the Claude Code CLI as the run's config and stored agent say). */
  agent?: (run: RemoteRun) => Agent;
  signal?: AbortSignal;
  onEvent?: (runId: string, event: EngineEvent | WorkerNews) => void;
}

export type WorkerNews =
  | { type: 'registered'; uri: string }
  | { type: 'claimed'; runId: string; epoch: number; resumed: boolean }
  | { type: 'settled'; runId: string; status: RunStatus; reason: string }
  | { type: 'lost'; runId: string; reason: string }
  /** Let go until the usage limit resets (a Restate timer queues it again then). */
  | { type: 'parked'; runId: string; until: number }
  /** The race this worker's attempt ended is decided (news of the worker that ended its last attempt). */
  | { type: 'race-decided'; runId: string; raceId: string; winner: string | null; reasons: string[] };

export interface RestateWorker {
  /** The URL Restate calls the services at. */
  readonly uri: string;
  /** Resolves when the worker has stopped (its signal aborted) and its drives have let their runs go. */
  readonly done: Promise<RunResult[]>;
}

/**
 * `obra worker`: serves Obra's Restate services (and registers them with the admin API), then takes tasks from
 * the queue and drives each with the engine core on a Restate host — the same statecharts as a local run.
 * A run is this worker's while it renews its lease; if the worker dies, the lease runs out, Restate's timer marks
 * the run interrupted, and another worker takes it on from its journal, with its session's transcript.
 *
 * Restate sends calls to the latest registered deployment only (it does not balance between them): every worker
 * registers itself, and a worker that finds the registered one unreachable registers itself again.
 */
export async function startRestateWorker(options: RestateWorkerOptions): Promise<RestateWorker> {
  const bind = options.bind ?? '127.0.0.1';
  if (!isLoopbackAddress(bind) && !options.identityKeys?.length && !options.insecure) {
    throw new UserError(`--bind ${bind} lets anyone who reaches this machine call the worker, and it has no key of the server to check calls against — set restate.identity_keys to the key \`obra restate up\` prints, or pass --insecure to accept unsigned calls`);
  }
  const client = new RestateClient(options);
  // Before anything is registered or listened on: a wrong URL is one line now, not a silent worker.
  await client.checkUrls();
  const leaseMs = options.leaseMs ?? 15_000;
  const name = options.name ?? `${hostname()}:${process.pid}`;
  const controller = new AbortController();
  const signal = controller.signal;
  options.signal?.addEventListener('abort', () => controller.abort(), { once: true });

  const endpoint = restate.endpoint();
  for (const service of OBRA_SERVICES) endpoint.bind(service);
  // Only calls signed by the server, when its key is known (else the SDK warns that anyone may call in).
  if (options.identityKeys?.length) endpoint.withIdentityV1(...options.identityKeys);
  const server: Http2Server = createServer(endpoint.http2Handler());
  const sessions = new Set<Http2Session>();
  server.on('session', (session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });
  // The handler calls in progress, but idle workers' waits (which last, and are killed when cut).
  const handling = new Set<ServerHttp2Stream>();
  server.on('stream', (stream, headers) => {
    if (String(headers[':path'] ?? '').includes(`/${WAITER_OBJECT}/`)) return;
    handling.add(stream);
    stream.once('close', () => handling.delete(stream));
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, bind, () => resolve((server.address() as { port: number }).port));
  });
  const uri = options.advertisedUrl ?? `http://127.0.0.1:${port}`;
  // Restate keeps its HTTP/2 connections open: they are closed by hand when the worker stops, once the handler
  // calls in progress have ended (for a while at most). A call cut mid-way is retried by Restate at this
  // endpoint only, which is gone: a queue call would hold ObraQueue/all, and so every take, for good.
  const shutdown = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      const until = Date.now() + DRAIN_MS;
      const close = () => {
        if (handling.size && Date.now() < until) return void setTimeout(close, 20);
        for (const session of sessions) session.destroy();
      };
      close();
    });
  try {
    await client.register(uri);
  } catch (error) {
    await shutdown();
    // Only Restate's refusal can be the keys' fault (its discovery call was refused by this worker).
    if (options.identityKeys?.length && !(error instanceof RestateUnreachable)) throw new UserError(`${(error as Error).message} — this worker accepts only calls signed with ${options.identityKeys.join(', ')}: is that the key of the server at ${urlsText(options.adminUrl)}? (restate.identity_keys)`);
    throw error;
  }
  const news = (event: WorkerNews) => options.onEvent?.('runId' in event ? event.runId : '', event);
  news({ type: 'registered', uri });

  // The registered endpoint must answer: when it is gone (its worker died), this one takes over.
  const watchdog = setInterval(() => {
    void client
      .registeredUri()
      .then(async (current) => {
        if (current?.replace(/\/$/, '') === uri.replace(/\/$/, '') || (current && (await reachable(current)))) return;
        await client.register(uri);
        news({ type: 'registered', uri });
      })
      .catch(() => {});
  }, 1_000);
  watchdog.unref();

  const inFlight = new Map<string, Promise<void>>();
  /**
   * The server's time as of a claim's answer, and when that was (performance.now()): later claims and the queue's
   * parks are told the time from it rather than each read the clock (a step Restate journals). Not used once
   * older than SERVER_CLOCK_MS: the next claim reads the clock again.
   */
  let serverClock: { server: number; at: number } | null = null;
  const serverTime = () => (serverClock && performance.now() - serverClock.at < SERVER_CLOCK_MS ? Math.round(serverClock.server + performance.now() - serverClock.at) : undefined);
  const results: RunResult[] = [];
  let poke = () => {};

  /**
   * An attempt of a race has ended here: its race is asked for its decision, which it makes once the last attempt
   * has ended. Only for the worker's log: the attempt's end, kept by its settle, has sent Restate the same request.
   */
  const refereeRace = async (run: RemoteRun, status: RunStatus) => {
    if (!run.race || !attemptEnded(status)) return;
    const decided = await client.decideRace(run.race.id).catch(() => null);
    if (decided) news({ type: 'race-decided', runId: run.runId, raceId: run.race.id, winner: decided.decision.winner, reasons: decided.decision.reasons });
  };

  /** Drives one claimed run to its end or its rest; never throws (what went wrong is news, and in the run). */
  const drive = async (claimed: Claimed): Promise<void> => {
    const run = claimed.run;
    const abort = new AbortController();
    const stop = () => abort.abort();
    signal.addEventListener('abort', stop, { once: true });
    const config = configSchema.parse(run.config);
    // A task that moves works in this worker's checkout of its branch; the machine's context names the task's
    // folder as submitted, which the agent and the checks are pointed from to this checkout.
    const space = run.workspace;
    const checkout = space.kind === 'git' ? { url: space.url, branch: space.branch, base: space.base, path: join(expandHome(options.workDir ?? config.restate.work_dir), run.runId) } : null;
    const here = (dir: string) => (checkout && dir === run.task.workdir ? checkout.path : dir);
    const inner = options.agent?.(run) ?? agentFromSpec({ ...run.agent, command: runnableHere(run.agent.command) }, config, options.agentCommand, run.runId);
    const agent = new SessionCarrier(inner, { client, runId: run.runId, epoch: claimed.epoch, worker: name, workdirHere: here, runTranscript: claimed.transcript });
    // A moving task's work is saved beside its branch before the call's answer is sent to Restate.
    const working = checkout ? new WorkSavingAgent(agent, (index) => saveWorkInProgress(checkout, run.runId, index)) : agent;
    const remote = new RestateRun({
      client,
      claimed,
      leaseMs,
      onLeaseLost: () => {
        news({ type: 'lost', runId: run.runId, reason: 'another worker holds the run now' });
        abort.abort();
      },
      workspace: checkout ? { afterIteration: (record) => saveToRemote(checkout, run.runId, record) } : null,
      session: agent,
    });
    const host: EngineHost = {
      run: remote,
      clock: systemClock,
      effects: { agent: working, runChecks: checkout ? (commands, o) => runChecks(commands, { ...o, cwd: here(o.cwd) }) : undefined },
      control: (send) => remote.control(send),
    };
    const { entry, lastSeq } = remote.journal.latest();
    const event = (run.startEvent ?? undefined) as TaskEvent | undefined;
    const restorable = entry ? restorableSnapshot(entry.snapshot) : null;
    if (restorable && !restorable.ok) {
      // No worker could: the run ends here, with why, instead of going from worker to worker.
      const reason = `its last saved state cannot be restored: ${restorable.problem}; replay it with the Obra that wrote it`;
      await client.task(run.runId, 'settle', { epoch: claimed.epoch, status: 'failed', reason, question: null, sessionId: run.sessionId, release: run.sessionId }).catch(() => {});
      news({ type: 'settled', runId: run.runId, status: 'failed', reason });
      signal.removeEventListener('abort', stop);
      await refereeRace(run, 'failed');
      return;
    }
    const start: DriveStart = restorable ? { snapshot: restorable.snapshot, fromSeq: lastSeq, event } : { input: run.input as unknown as TaskInput, event };
    news({ type: 'claimed', runId: run.runId, epoch: claimed.epoch, resumed: Boolean(entry) });
    try {
      // A new run's drive goes straight to its first call: its session is taken meanwhile. (In the try: what
      // throws here loses the run to the next worker, not this worker's process.)
      if (!restorable) agent.takeEarly(run.sessionId, run.task.workdir, abort.signal);
      if (checkout) await prepareCheckout(checkout, answeredIteration(run.runId, restorable?.ok ? restorable.snapshot : null));
      const parkAfterMs = options.parkAfterMs ?? 60_000;
      const onEvent = (e: EngineEvent) => {
        if (e.type === 'usage-limit' && e.dueAt - Date.now() > parkAfterMs && !abort.signal.aborted) {
          remote.parkUntil(e.dueAt);
          news({ type: 'parked', runId: run.runId, until: e.dueAt });
          abort.abort();
        }
        options.onEvent?.(run.runId, e);
      };
      const result = await new TaskDrive(host, start, { config, signal: abort.signal, onEvent }).run();
      results.push(result);
      news({ type: 'settled', runId: run.runId, status: result.status, reason: result.reason });
      await refereeRace(run, result.status);
    } catch (error) {
      // Its lease runs out and another worker (or this one) takes it on from its journal.
      news({ type: 'lost', runId: run.runId, reason: (error as Error).message });
    } finally {
      remote.abandon();
      signal.removeEventListener('abort', stop);
    }
  };

  const loop = async () => {
    const pollMs = options.pollMs ?? 500;
    const idleWaitMs = options.idleWaitMs ?? IDLE_WAIT_MS;
    /** The queue shards to take from now: the one whose work woke the worker, or all after a failed wait. */
    let shards: string[] = [];
    /** The task a wake named (its line had just become takeable): claimed at once, without a take. */
    let named: string | null = null;
    /** The wait in progress (one at a time: a slot freed meanwhile does not start another). */
    let waiting: Promise<void> | null = null;
    let retryMs = pollMs;
    /** Claims a task and drives it; false when it could not be claimed (another worker has it, or it is gone). */
    const start = async (runId: string): Promise<boolean> => {
      const at = serverTime();
      const claimed = await client.task<Claimed | null>(runId, 'claim', { worker: name, leaseMs, at }).catch(() => null);
      if (!claimed) return false;
      // Reckoned again only from a claim that read the server's clock (one that was told the time says it back).
      if (at === undefined && claimed.now !== undefined) serverClock = { server: claimed.now, at: performance.now() };
      const driving = drive(claimed).finally(() => {
        inFlight.delete(runId);
        poke();
      });
      inFlight.set(runId, driving);
      return true;
    };
    while (!signal.aborted) {
      let free = options.concurrency - inFlight.size;
      const direct = named;
      named = null;
      // Claimed, its shard is not asked (a task left there wakes the worker's next wait at once); else it is.
      if (direct && free > 0 && !signal.aborted && !inFlight.has(direct) && (await start(direct))) {
        free -= 1;
        shards = [];
      }
      for (const key of shards.splice(0)) {
        if (free <= 0 || signal.aborted) break;
        let offered: string[] = [];
        let more = false;
        try {
          const took = await client.call<string[] | { taken: string[]; more: boolean }>(QUEUE_OBJECT, key, 'take', { max: free, more: true });
          // A list: from services of an earlier Obra, which do not say whether more are left.
          ({ taken: offered, more } = Array.isArray(took) ? { taken: took, more: took.length > 0 } : took);
        } catch {
          // Restate unreachable for a moment: its next wait (or the pause after a failed one) tells when to look.
        }
        for (const runId of offered) {
          if (signal.aborted) break;
          if (await start(runId)) free -= 1;
        }
        // More left there than it could take: it takes again once a slot is free.
        if (more && free <= 0) shards = [key];
      }
      // A free slot: the worker waits in Restate until a shard has a task to take (or its wait times out, or a
      // slot is freed). When the wait fails, it looks at every shard after a growing pause.
      if (free > 0 && !shards.length && !waiting) {
        waiting = waitForWork(client, name, idleWaitMs, signal, serverTime())
          .then(
            (wake) => {
              retryMs = pollMs;
              if (!wake) return;
              // A shard's name, from services of an earlier Obra.
              const { shard, runId } = typeof wake === 'string' ? { shard: wake, runId: undefined } : wake;
              shards = [shard];
              named = runId ?? null;
            },
            () =>
              sleep(retryMs, undefined, { signal }).then(
                () => {
                  retryMs = Math.min(retryMs * 2, idleWaitMs);
                  shards = [...QUEUE_SHARDS];
                },
                () => {},
              ),
          )
          .finally(() => {
            waiting = null;
          });
      }
      if (free > 0 && shards.length) continue;
      await new Promise<void>((wake) => {
        function done() {
          signal.removeEventListener('abort', done);
          // An earlier round's wait may end after this round began: it must not unset this round's poke.
          if (poke === done) poke = () => {};
          wake();
        }
        poke = done;
        signal.addEventListener('abort', done, { once: true });
        void waiting?.then(done);
      });
    }
    // Stopped: each drive ends interrupted (its run is queued again for another worker) and is let go.
    await Promise.all(inFlight.values());
    clearInterval(watchdog);
    await shutdown();
    return results;
  };

  return { uri, done: loop() };
}

/** States of an iteration whose agent call's answer is in the journal (and whose work was saved before it). */
const ANSWERED = new Set(['validating', 'scoring', 'deciding', 'persisting']);

/** The iteration a restored run is in after its call's answer, not yet committed: its saved work goes back. */
function answeredIteration(runId: string, snapshot: unknown): { runId: string; index: number } | null {
  const iteration = snapshot ? runningIterationOf(snapshot) : null;
  return iteration && iteration.status === 'active' && ANSWERED.has(iteration.state) ? { runId, index: iteration.index } : null;
}

const isLoopbackAddress = (address: string) => address === 'localhost' || address === '::1' || address.startsWith('127.');

/** The submitted agent binary when this machine has it (a name for PATH, or a path that exists here). */
function runnableHere(command: string | undefined): string | undefined {
  return command && (!command.includes('/') || existsSync(command)) ? command : undefined;
}

/** How long the server's time reckoned from a claim is used for (the monotonic clock drifts little in that time). */
const SERVER_CLOCK_MS = 10 * 60_000;

/** How long a stopping worker lets the handler calls in progress end before it closes Restate's connections. */
const DRAIN_MS = 3_000;

/** An idle worker's wait: one call, which ends when a shard has a task to take or after `timeoutMs` (see `waiterObject`). */
const IDLE_WAIT_MS = 15_000;

/**
 * Waits in Restate for work (ObraWaiter/<worker>/wait). Its own request rather than the client's, so that a
 * stopping worker cuts it at once instead of holding the process until the wait ends.
 */
async function waitForWork(client: RestateClient, worker: string, timeoutMs: number, signal: AbortSignal, at?: number): Promise<WorkWake | string | null> {
  callsMade.set(`${WAITER_OBJECT}/wait`, (callsMade.get(`${WAITER_OBJECT}/wait`) ?? 0) + 1);
  const response = await client.viaIngress((ingress) =>
    fetch(`${ingress}/${WAITER_OBJECT}/${encodeURIComponent(worker)}/wait`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ timeoutMs, at }),
      signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs + 10_000)]),
    }),
  );
  if (!response.ok) throw new Error(`${WAITER_OBJECT}/wait: HTTP ${response.status} ${await response.text()}`);
  return (await response.json()) as WorkWake | string | null;
}

/** Whether something listens at the URL's host and port (a dead worker's endpoint refuses at once). */
function reachable(url: string): Promise<boolean> {
  const { hostname: host, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host, port: Number(port) || 80, timeout: 1_000 });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}
