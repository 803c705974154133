import type { AgentCommand } from '../agents/agent-for.js';
import { setMaxListeners } from 'node:events';
import { resolve } from 'node:path';
import type { Agent } from '../agents/agent.js';
import { validateConfig } from '../config/load.js';
import type { ObraConfig } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import { queueOrder } from '../core/status-line.js';
import { isFinalStatus, SEVERITY, type RunStatus } from '../core/statuses.js';
import type { Clock } from '../engine/clock.js';
import type { EngineEvent } from '../engine/events.js';
import type { RunResult } from '../engine/run-result.js';
import { resumeRun } from '../hosts/files/local.js';
import type { RunFile } from '../persisted/run-file.js';
import { attemptEnded } from '../race/decision.js';
import { decideRace } from '../race/race.js';
import type { runChecks } from '../scoring/checks.js';
import { RunStore } from '../store/run-store.js';
import { RunStatusCache } from '../store/status-cache.js';

/**
 * `obra work`: drives the store's queued and interrupted tasks, `concurrency` at a time, by priority then age,
 * each started only once the run it follows is `done` (and `blocked`, for good, when that one ended otherwise).
 * Several workers may share a store: a run is driven by whoever holds its lock, never by two. Without
 * `untilIdle` a worker waits for new submissions; with it, it returns once nothing is left it could start.
 */

export interface WorkOptions {
  storeDir?: string;
  config?: ObraConfig;
  /** Tasks driven at once (default: config queue.concurrency). */
  concurrency?: number;
  /** Return once nothing is running and nothing could start; else wait for new submissions until the signal. */
  untilIdle?: boolean;
  /** Stops picking tasks; the running ones are interrupted (resumable), and the worker returns when they are. */
  signal?: AbortSignal;
  /** The agent of a run (default: the Claude Code CLI the run was submitted with). */
  agent?: Agent | ((runId: string) => Agent);
  /** A Claude Code binary to use instead of the one the runs were submitted with. */
  agentCommand?: AgentCommand;
  runChecks?: typeof runChecks;
  clock?: Clock;
  /** Every engine event, with the run it belongs to. */
  onEvent?: (runId: string, event: EngineEvent) => void;
  /** What the worker itself does: starts, finishes, blocks a task; waits; gives up on one. */
  onNews?: (news: WorkNews) => void;
  /** How often the store is looked at for new work (ms). */
  pollMs?: number;
}

export type WorkNews =
  | { type: 'started'; runId: string; resumed: boolean }
  | { type: 'finished'; runId: string; status: RunStatus; reason: string }
  | { type: 'blocked'; runId: string; reason: string }
  | { type: 'skipped'; runId: string; reason: string }
  | { type: 'idle'; waiting: number }
  /** The last attempt of a race ended and this worker recorded the decision (told once, by whoever recorded it). */
  | { type: 'race-decided'; raceId: string; winner: string | null; reasons: string[] };

export interface WorkResult {
  /**
   * Every run this worker drove to rest or to its end, in the order they did. Whole results are kept with
   * `untilIdle`; a worker that waits for new submissions (it may run for weeks) keeps each without its
   * iterations, which `obra show` reads from the store.
   */
  results: RunResult[];
  /** Runs it marked blocked. */
  blocked: string[];
  /** The worst status among them (null: it drove nothing). */
  worst: RunStatus | null;
}

interface Candidate {
  runId: string;
  file: RunFile;
  status: RunStatus;
  priority: number;
  since: string;
}

export async function work(options: WorkOptions = {}): Promise<WorkResult> {
  const config = validateConfig(options.config ?? {});
  const storeDir = resolve(options.storeDir ?? config.store.dir);
  const store = RunStore.open(storeDir);
  // Between looks a run's file is read again only when it changed: an idle worker over thousands of resting
  // runs would otherwise read and check each of them twice a second.
  const statuses = new RunStatusCache(store);
  const concurrency = options.concurrency ?? config.queue.concurrency;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new UserError(`--concurrency must be a whole number of at least 1, got ${concurrency}`);
  const news = options.onNews ?? (() => {});
  // One stop for the worker and its drives: every drive in flight listens to it (hence the listener limit).
  const stop = new AbortController();
  setMaxListeners(concurrency + 16, stop.signal);
  const forward = () => stop.abort();
  if (options.signal?.aborted) stop.abort();
  options.signal?.addEventListener('abort', forward, { once: true });
  const signal = stop.signal;
  /** Wakes the loop when a task settles. */
  let poke = () => {};
  const inFlight = new Map<string, { promise: Promise<void>; folder: string | null }>();
  /**
   * Runs this worker could not start (another worker had them, or they cannot run here), with when their run.json
   * was written then: not tried again until it is written anew (the other worker died and left it interrupted,
   * say, or a person changed it).
   */
  const passedOver = new Map<string, string>();
  const result: WorkResult = { results: [], blocked: [], worst: null };
  const note = (status: RunStatus) => {
    if (result.worst === null || SEVERITY.indexOf(status) < SEVERITY.indexOf(result.worst)) result.worst = status;
  };

  // A race is decided once its last attempt has ended: after each attempt this worker drove, and for the ended
  // attempts a scan finds (a worker killed between an attempt's end and the decision: the next one decides).
  const decidedRaces = new Set<string>();
  const refereeRace = (raceId: string | undefined) => {
    if (!raceId || decidedRaces.has(raceId)) return;
    try {
      const decided = decideRace(store, raceId);
      if (!decided) return;
      decidedRaces.add(raceId);
      if (decided.fresh) news({ type: 'race-decided', raceId, winner: decided.decision.winner, reasons: decided.decision.reasons });
    } catch (error) {
      news({ type: 'skipped', runId: raceId, reason: `the race could not be decided: ${(error as Error).message}` });
    }
  };

  const start = (candidate: Candidate) => {
    const { runId } = candidate;
    const agent = typeof options.agent === 'function' ? options.agent(runId) : options.agent;
    const promise = resumeRun(runId, {
      storeDir,
      agent,
      agentCommand: options.agentCommand,
      runChecks: options.runChecks,
      clock: options.clock,
      signal,
      drivableOnly: true,
      maxConcurrentCalls: config.agent.max_concurrent_calls ?? concurrency,
      // "started" once the run is ours (its lock taken, its worktree ready), not when we merely tried.
      onEvent: (event) => {
        if (event.type === 'run-started') news({ type: 'started', runId, resumed: candidate.status === 'interrupted' });
        options.onEvent?.(runId, event);
      },
    })
      .then((run) => {
        result.results.push(options.untilIdle ? run : { ...run, iterations: [], question: null });
        note(run.status);
        news({ type: 'finished', runId, status: run.status, reason: run.reason });
        refereeRace(candidate.file.queue?.race?.id);
      })
      .catch((error: unknown) => {
        passedOver.set(runId, candidate.file.updatedAt);
        // Another worker took it first (its lock, or it has moved on meanwhile): not ours. Anything else: say why, and leave it be.
        if (error instanceof UserError && error.exitCode === 3) return;
        // It stays where it was, not started: the worker does not end as if all were done.
        note('queued');
        news({ type: 'skipped', runId, reason: (error as Error).message });
      })
      .finally(() => {
        inFlight.delete(runId);
        poke();
      });
    inFlight.set(runId, { promise, folder: candidate.file.queue?.workspace.kind === 'dir' ? resolve(candidate.file.task.workdir) : null });
  };

  // The store is read in full on start and then at most once per poll; a task settling only walks the list
  // read last (a scan per settle would cost O(tasks) each time: O(tasks²) for a long queue).
  const pollMs = options.pollMs ?? 500;
  const ended = new Set<string>();
  let pending: Candidate[] = [];
  let scannedAt = -Infinity;
  for (;;) {
    if (signal.aborted) break;
    const fresh = Date.now() - scannedAt >= pollMs;
    if (fresh) {
      pending = candidates(store, statuses, inFlight, passedOver, ended, refereeRace);
      scannedAt = Date.now();
    }
    let started = 0;
    let waiting = 0;
    const left: Candidate[] = [];
    // Many tasks may follow the same run: its status is looked up once a pass.
    const followed = new Map<string, RunStatus>();
    for (const candidate of pending) {
      if (inFlight.has(candidate.runId) || passedOver.has(candidate.runId)) continue;
      if (inFlight.size >= concurrency) {
        left.push(candidate);
        continue;
      }
      const gate = followGate(statuses, candidate, followed);
      if (gate.kind === 'wait') {
        waiting++;
        left.push(candidate);
        continue;
      }
      if (gate.kind === 'blocked') {
        block(store, candidate.runId, gate.reason);
        result.blocked.push(candidate.runId);
        note('blocked');
        news({ type: 'blocked', runId: candidate.runId, reason: gate.reason });
        continue;
      }
      // Two tasks never share a folder (a plain one: a git task has its own worktree).
      const folder = candidate.file.queue?.workspace.kind === 'dir' ? resolve(candidate.file.task.workdir) : null;
      if (folder && [...inFlight.values()].some((f) => f.folder === folder)) {
        waiting++;
        left.push(candidate);
        continue;
      }
      start(candidate);
      started++;
    }
    pending = left;
    if (options.untilIdle && inFlight.size === 0 && started === 0) {
      // Idle by the list read last: look at the store once more before saying so.
      if (!fresh) {
        scannedAt = -Infinity;
        continue;
      }
      // Tasks left waiting (for a run that rests, or a folder in use) have not ended done: they count as queued.
      if (waiting) {
        note('queued');
        news({ type: 'idle', waiting });
      }
      break;
    }
    // Until a task settles, the next look at the store, or the worker is stopped.
    await new Promise<void>((wake) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        poke = () => {};
        wake();
      };
      const timer = setTimeout(done, Math.max(0, scannedAt + pollMs - Date.now()));
      poke = done;
      signal.addEventListener('abort', done, { once: true });
    });
  }
  // Stopped: the drives got the same signal and end interrupted (resumable); wait for them to be saved.
  await Promise.all([...inFlight.values()].map((f) => f.promise));
  options.signal?.removeEventListener('abort', forward);
  return result;
}

/** The runs a worker may start, best first: queued and interrupted ones, by priority (higher first), then age. */
function candidates(store: RunStore, statuses: RunStatusCache, inFlight: Map<string, unknown>, passedOver: Map<string, string>, ended: Set<string>, onAttemptEnded: (raceId: string) => void): Candidate[] {
  const found: Candidate[] = [];
  // A race with several ended attempts is refereed once a scan, not once an attempt.
  const racesWithEndedAttempts = new Set<string>();
  const listed = store.listRunIds();
  statuses.keepOnly(listed);
  for (const runId of listed) {
    if (inFlight.has(runId) || ended.has(runId)) continue;
    try {
      const { file, status, updatedAt, raceId } = statuses.peek(runId);
      if (passedOver.has(runId)) {
        if (passedOver.get(runId) === updatedAt) continue;
        passedOver.delete(runId);
      }
      // A run that ended is never driven again: later looks do not read it (a long queue is mostly ended runs).
      if (isFinalStatus(status)) {
        ended.add(runId);
        statuses.forget(runId);
      }
      if (raceId && attemptEnded(status)) racesWithEndedAttempts.add(raceId);
      if (!file) continue;
      found.push({ runId, file, status, priority: file.queue?.priority ?? 0, since: file.queue?.submittedAt ?? file.createdAt });
    } catch {
      // Unreadable runs are `obra runs`'s to report.
    }
  }
  for (const raceId of racesWithEndedAttempts) onAttemptEnded(raceId);
  return found.sort(queueOrder);
}

/** Whether the run this one follows lets it start: done → go; ended otherwise → blocked; else wait. */
function followGate(statuses: RunStatusCache, candidate: Candidate, followed: Map<string, RunStatus>): { kind: 'go' } | { kind: 'wait' } | { kind: 'blocked'; reason: string } {
  const after = candidate.file.queue?.after;
  if (!after || candidate.status !== 'queued') return { kind: 'go' };
  let status: RunStatus;
  try {
    status = followed.get(after) ?? statuses.peek(after).status;
    followed.set(after, status);
  } catch {
    return { kind: 'blocked', reason: `the run it follows, ${after}, cannot be read (deleted?)` };
  }
  if (status === 'done') return { kind: 'go' };
  if (isFinalStatus(status)) return { kind: 'blocked', reason: `the run it follows, ${after}, ended ${status}` };
  return { kind: 'wait' };
}

function block(store: RunStore, runId: string, reason: string): void {
  const handle = store.openRun(runId);
  try {
    if (handle.file.status === 'queued') handle.update({ status: 'blocked', reason, finishedAt: new Date().toISOString() });
  } finally {
    handle.close();
  }
}
