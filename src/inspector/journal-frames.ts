import { createInspector } from '@statelyai/inspect';
import type { AnyStateMachine } from 'xstate';
import { iterationMachine } from '../../machines/iteration.machine.js';
import { taskMachine } from '../../machines/task.machine.js';
import { UserError } from '../core/errors.js';
import { runningIterationOf, taskContextOf, taskOutputOf, taskStateOf, taskStatusOf, type IterationView } from '../persisted/snapshot.js';
import { RunStore, type JournalEntry } from '../store/run-store.js';
import { isInteractive } from './cli.js';
import type { StatelyMessage } from './live.js';
import { DEFAULT_INSPECTOR_PORT, startInspectorServer, type InspectorServer } from './server.js';

/**
 * Replay into the Stately inspector: a saved run's journal (one line per transition, each holding the task
 * machine's persisted snapshot with its running iteration) becomes the inspector messages a live run would
 * have sent — the task actor, one iteration actor per iteration, the event of every transition and the
 * snapshots it produced — fed at the pace the run had (or `speed` times faster).
 */

interface InspectedSnapshot {
  status: ActorStatus;
  value: unknown;
  context: unknown;
  output?: unknown;
}

/** Messages to send together, and the run's clock time they belong to. */
export interface ReplayFrame {
  at: number;
  seq: number;
  messages: StatelyMessage[];
}

type ActorStatus = 'active' | 'done' | 'error' | 'stopped';


/** Machine definitions as the live inspector sends them: the config, functions reduced to their names. */
function definitionOf(machine: AnyStateMachine): string {
  return JSON.stringify(machine.config, (_key, value: unknown) => (typeof value === 'function' ? { type: (value as { name: string }).name } : value));
}

export function inspectorFramesFromJournal(runId: string, entries: JournalEntry[]): ReplayFrame[] {
  const taskSession = `replay:${runId}:task`;
  const iterationSession = (index: number) => `replay:${runId}:iteration:${index}`;
  let frame: StatelyMessage[] = [];
  // The package's own builders give the messages the inspector's exact shape and version stamp.
  const build = createInspector({ send: (message) => frame.push(message) });
  const registered = new Set<number>();
  const lastSent = new Map<string, string>();
  let runningIteration: { index: number; snapshot: InspectedSnapshot } | null = null;
  const frames: ReplayFrame[] = [];

  const taskSnapshotOf = (snapshot: unknown): InspectedSnapshot => {
    const output = taskOutputOf(snapshot);
    const view = { status: taskStatusOf(snapshot) as ActorStatus, value: taskStateOf(snapshot), context: taskContextOf(snapshot) };
    return output === undefined ? view : { ...view, output };
  };
  const iterationSnapshotOf = (iteration: IterationView): InspectedSnapshot => ({ status: iteration.status as ActorStatus, value: iteration.state, context: iteration.context });
  const sendSnapshot = (sessionId: string, snapshot: InspectedSnapshot, event: JournalEntry['event']) => {
    const text = JSON.stringify(snapshot);
    if (lastSent.get(sessionId) === text) return;
    lastSent.set(sessionId, text);
    build.snapshot(sessionId, snapshot, { event });
    fix(frame.at(-1)!, sessionId === taskSession ? undefined : taskSession);
  };
  const fix = (message: StatelyMessage, parentId: string | undefined, actor?: { name: string; definition: string }) => {
    // For actors given by id the package's helpers leave these out: set them as a live run has them.
    Object.assign(message, { rootId: taskSession }, message.type === '@xstate.actor' ? { parentId, ...actor } : {});
  };

  for (const entry of entries) {
    frame = [];
    const root = entry.snapshot;
    const iteration = runningIterationOf(root);
    const child = iteration ? iterationSnapshotOf(iteration) : null;
    const childIndex = iteration?.index;

    if (frames.length === 0) {
      build.actor(taskSession, taskSnapshotOf(root));
      fix(frame.at(-1)!, undefined, { name: 'task', definition: definitionOf(taskMachine) });
    }
    // The iteration that ran before has gone from the snapshot: the task absorbed its output, so it finished.
    if (runningIteration && runningIteration.index !== childIndex) {
      sendSnapshot(iterationSession(runningIteration.index), { ...runningIteration.snapshot, status: 'done', value: 'complete' }, entry.event);
      runningIteration = null;
    }
    if (child && typeof childIndex === 'number') {
      if (!registered.has(childIndex)) {
        registered.add(childIndex);
        build.actor(iterationSession(childIndex), child);
        fix(frame.at(-1)!, taskSession, { name: 'iteration', definition: definitionOf(iterationMachine) });
      }
      runningIteration = { index: childIndex, snapshot: child };
    }
    const mover = entry.actor === 'iteration' && typeof childIndex === 'number' ? iterationSession(childIndex) : taskSession;
    build.event(mover, entry.event);
    fix(frame.at(-1)!, undefined);
    if (child && typeof childIndex === 'number') sendSnapshot(iterationSession(childIndex), child, entry.event);
    sendSnapshot(taskSession, taskSnapshotOf(root), entry.event);
    frames.push({ at: entry.at, seq: entry.seq, messages: frame });
  }
  return frames;
}

export interface FeedOptions {
  /** 1 = the run's own pace; 10 = ten times faster. */
  speed?: number;
  /** A pause longer than this (after `speed`) is shortened to it: hours waiting for a human replay in seconds. */
  maxGapMs?: number;
  signal?: AbortSignal;
  /** Injected in tests. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  onFrame?: (frame: ReplayFrame, index: number) => void;
}

export const DEFAULT_MAX_GAP_MS = 5000;

/** Publishes the frames at the run's pace; resolves when all are sent (or the signal aborts). */
export async function feedFrames(frames: ReplayFrame[], publish: (message: StatelyMessage) => void, options: FeedOptions = {}): Promise<number> {
  const speed = options.speed ?? 1;
  if (!(speed > 0) || !Number.isFinite(speed)) throw new UserError(`--speed must be a number above 0 (1 = as fast as the run was), got ${speed}`);
  const maxGap = options.maxGapMs ?? DEFAULT_MAX_GAP_MS;
  const sleep = options.sleep ?? abortableSleep;
  let sent = 0;
  for (const [i, frame] of frames.entries()) {
    if (options.signal?.aborted) break;
    if (i > 0) {
      const gap = Math.min(Math.max(0, frame.at - frames[i - 1]!.at) / speed, maxGap);
      if (gap > 0) await sleep(gap, options.signal);
      if (options.signal?.aborted) break;
    }
    for (const message of frame.messages) publish(message);
    options.onFrame?.(frame, i);
    sent += 1;
  }
  return sent;
}

function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolveSleep) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolveSleep();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

export interface ReplayInspectOptions extends FeedOptions {
  storeDir: string;
  runId: string;
  port?: number;
  /** Wait for a page before feeding, so it sees the run from its first transition (default true). */
  waitForViewer?: boolean;
  /** Keep serving after the last frame until Ctrl-C (default: in an interactive terminal). */
  hold?: boolean;
  out?: NodeJS.WritableStream;
  onListening?: (server: InspectorServer) => void | Promise<void>;
}

/**
 * `obra replay <runId> --inspect [--speed N]`: serves a saved run to the Stately inspector. Ctrl-C (SIGINT)
 * ends the wait, the feed or the hold; pass `signal` to end it from code.
 */
export async function replayIntoInspector(options: ReplayInspectOptions): Promise<{ frames: number; sent: number }> {
  const out = options.out ?? process.stderr;
  const store = RunStore.open(options.storeDir, { create: false });
  const handle = store.openRun(options.runId);
  const entries = handle.readJournal();
  handle.close();
  if (!entries.length) throw new UserError(`run ${options.runId} has no transitions to replay (its journal.jsonl is empty)`);
  const frames = inspectorFramesFromJournal(options.runId, entries);

  const server = await startInspectorServer({ port: options.port ?? DEFAULT_INSPECTOR_PORT });
  const stop = new AbortController();
  const onInterrupt = () => stop.abort();
  process.once('SIGINT', onInterrupt);
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  try {
    out.write(`Inspector: ${server.url} — open it in a browser to watch run ${options.runId} replayed (${frames.length} transitions)\n`);
    await options.onListening?.(server);
    if (options.waitForViewer ?? true) {
      out.write('Waiting for the inspector page to connect (Ctrl-C to give up)…\n');
      await server.waitForViewer(signal).catch(() => undefined);
    }
    const sent = await feedFrames(frames, server.publish, { ...options, signal });
    out.write(`Replayed ${sent} of ${frames.length} transitions of run ${options.runId}.\n`);
    if ((options.hold ?? isInteractive()) && !signal.aborted) {
      out.write(`The inspector keeps serving the replay at ${server.url} — press Ctrl-C to quit.\n`);
      await new Promise<void>((resolveHold) => signal.addEventListener('abort', () => resolveHold(), { once: true }));
    }
    return { frames: frames.length, sent };
  } finally {
    process.off('SIGINT', onInterrupt);
    await server.close();
  }
}
