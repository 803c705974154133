import { createActor, fromPromise, SimulatedClock, type AnyActorLogic, type AnyActorRef, type InspectionEvent, type Snapshot } from 'xstate';
import { createIterationMachine } from '../../machines/iteration.machine.js';
import { createTaskMachine, type TaskInput } from '../../machines/task.machine.js';
import { configSchema } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import { parseUntil } from './until.js';
import type { JournalEntry, JournalEvent } from '../store/journal.js';
import { RunStore } from '../store/run-store.js';
import { stepOf, type Step } from '../engine/recorder.js';
import type { IterationRecord } from '../core/types.js';
import { FinishedIterations } from './records.js';

/**
 * Deterministic replay: drives the same statecharts again from a run's journal, with no agent and no checks.
 *
 * Every invoked actor (building the context, the agent call, the checks, the decision...) is replaced by one
 * that answers with the output the journal recorded for it; time is an XState `SimulatedClock` set to each
 * recorded transition's time, so backoff delays and budgets decide as they did; external events (a human's
 * answer, a resume, a pause) are sent when the journal says they came. Each transition the machines make is
 * compared with the recorded one — actor, event, task state, iteration and state, and for every finished
 * iteration its decision, rule, states, attempts and backoff delays — and the first difference is reported.
 *
 * A run that was killed and resumed is replayed the way it happened: each `obra.resume` line starts a new
 * segment restored from the snapshot the resumed process restored, with its pending actors started again.
 */

export interface ReplayStep {
  /** Position of the step in the replay (0-based). */
  step: number;
  /** The recorded journal line it matched. */
  seq: number;
  /** The run's clock time of the step (the recorded one). */
  at: number;
  actor: 'task' | 'iteration';
  event: JournalEvent;
  task: unknown;
  iteration: { index: number; state: unknown } | null;
  /** The replayed task actor's persisted snapshot after the step (with its running iteration). */
  snapshot: unknown;
  /** Which segment of the run (0, then one more after each resume). */
  segment: number;
}

export interface ReplayDivergence {
  /** The recorded line the replay disagrees with (null when the replay did something the record did not). */
  seq: number | null;
  at: number | null;
  /** What differs: `event`, `task state`, `iteration`, `decision`, ... */
  what: string;
  expected: string;
  actual: string;
  /** What `expected` and `actual` are (default: the recorded line and the replayed step). */
  sides?: { expected: string; actual: string };
}

export interface ReplayResult {
  runId: string;
  /** Every replayed step matched the record (up to `until` when given). */
  verified: boolean;
  steps: number;
  /** Iterations the replay finished. */
  iterations: number;
  /** 1 + the number of times the run was resumed. */
  segments: number;
  divergence: ReplayDivergence | null;
  /** With `until`: where the replay stopped, and the snapshot there. */
  stoppedAt: { seq: number; iteration: number | null; state: string; snapshot: unknown } | null;
  /** How long the replay took, and how long the recorded run took (its clock, first to last line). */
  durationMs: number;
  recordedMs: number;
}

export interface ReplayOptions {
  storeDir?: string;
  /** `<iteration>.<state>` (e.g. `3.scoring`) or `task.<state>`: stop at the first step entering it. */
  until?: string;
  /** Replay in real time divided by this factor (1 = as it happened); default: as fast as possible. */
  speed?: number;
  /** Called with every matched step, in order (awaited: a viewer can pace the replay). */
  onStep?: (step: ReplayStep) => void | Promise<void>;
  /** XState inspection events of the replayed actors (pass `@statelyai/inspect`'s inspector). */
  inspect?: (event: InspectionEvent) => void;
  signal?: AbortSignal;
}

interface Segment {
  /** Snapshot the segment starts from (a resumed process's restore point); undefined for the run's start. */
  restoreFrom: unknown;
  startAt: number;
  lines: JournalEntry[];
  /** Whether the process was killed at its end (a later segment resumed it). */
  cutShort: boolean;
}

interface PendingActor {
  id: string;
  src: string;
  resolve: (output: unknown) => void;
  reject: (error: Error) => void;
}

/** Replays a stored run; resolves with the verdict (it throws only for bad input: unknown run, bad files). */
export async function replayRun(runId: string, options: ReplayOptions = {}): Promise<ReplayResult> {
  const store = RunStore.open(options.storeDir ?? '.obra', { create: false });
  const handle = store.openRun(runId);
  try {
    return await replayJournal(
      { runId, entries: handle.journal.entries({ markers: true }), config: handle.file.config, input: handle.file.input, where: `${handle.dir}/journal.jsonl`, records: handle.readIterations() },
      options,
    );
  } finally {
    handle.close();
  }
}

/** What a replay needs of a run, wherever it is kept (a store folder, Restate): its journal, config and input. */
export interface ReplaySource {
  runId: string;
  /** The journal's entries, markers included, in order. */
  entries: Iterable<JournalEntry>;
  config: unknown;
  input: unknown;
  /** Where the journal is, in words, for messages. */
  where: string;
  /** The stored iteration records: checked against the journal (the one truth) before anything is replayed. */
  records?: readonly IterationRecord[];
}

/** Replays a run's journal through the statecharts (see replayRun). */
export async function replayJournal(source: ReplaySource, options: ReplayOptions = {}): Promise<ReplayResult> {
  const { runId } = source;
  const started = performance.now();
  const until = options.until === undefined ? null : parseUntil(options.until);
  const finished = new FinishedIterations();
  const segments = segmentsOf(source.entries, finished);
  const file = { input: source.input };
  const parsedConfig = configSchema.safeParse(source.config);
  if (!parsedConfig.success) {
    throw new UserError(`run ${runId} holds a config this Obra cannot read (${parsedConfig.error.issues[0]?.path.join('.')}: ${parsedConfig.error.issues[0]?.message})`);
  }
  const allLines = segments.flatMap((s) => s.lines);
  if (!allLines.length) throw new UserError(`run ${runId} has no transitions to replay (${source.where} is empty)`);

  const state = { steps: 0, iterations: 0, divergence: null as ReplayDivergence | null, stoppedAt: null as ReplayResult['stoppedAt'], lastAt: allLines[0]!.at };
  for (let i = 0; i < segments.length && !state.divergence && !state.stoppedAt; i++) {
    if (options.signal?.aborted) break;
    await replaySegment(segments[i]!, i, file.input as unknown as TaskInput, until, options, state);
  }
  // A stored record that does not match the journal is a divergence however well the machines replay.
  if (!state.divergence && !state.stoppedAt && source.records && !options.signal?.aborted) state.divergence = finished.divergence(source.records);
  return {
    runId,
    verified: state.divergence === null,
    steps: state.steps,
    iterations: state.iterations,
    segments: segments.length,
    divergence: state.divergence,
    stoppedAt: state.stoppedAt,
    durationMs: performance.now() - started,
    recordedMs: allLines.at(-1)!.at - allLines[0]!.at,
  };
}

/** Splits the journal at each resume, keeping only the snapshots replay needs (restore points). */
function segmentsOf(entries: Iterable<JournalEntry>, finished: FinishedIterations): Segment[] {
  const segments: Segment[] = [{ restoreFrom: undefined, startAt: 0, lines: [], cutShort: false }];
  let lastSnapshot: unknown = undefined;
  for (const entry of entries) {
    finished.see(entry);
    if (entry.actor === 'obra') {
      if (entry.event.type === 'obra.resume') {
        segments.at(-1)!.cutShort = true;
        segments.push({ restoreFrom: lastSnapshot, startAt: entry.at, lines: [], cutShort: false });
      }
      continue;
    }
    lastSnapshot = entry.snapshot;
    // Replay compares transitions, not stored snapshots: drop them so a long run stays small in memory.
    segments.at(-1)!.lines.push({ ...entry, snapshot: undefined });
  }
  if (segments[0]!.lines.length) segments[0]!.startAt = segments[0]!.lines[0]!.at;
  return segments.filter((s, i) => i === 0 || s.restoreFrom !== undefined);
}

type ReplayState = { steps: number; iterations: number; divergence: ReplayDivergence | null; stoppedAt: ReplayResult['stoppedAt']; lastAt: number };

async function replaySegment(segment: Segment, index: number, input: TaskInput, until: string | null, options: ReplayOptions, state: ReplayState) {
  const clock = new SimulatedClock();
  clock.set(segment.startAt);
  const pending = new Map<string, PendingActor>();
  const machine = replayMachines(() => clock.now(), pending);
  const produced: (Step & { snapshot: unknown })[] = [];
  const wantSnapshots = Boolean(options.onStep || until);
  let actor: AnyActorRef | undefined;
  actor = createActor(machine, {
    ...(segment.restoreFrom === undefined ? { input } : { snapshot: segment.restoreFrom as Snapshot<unknown> }),
    clock,
    inspect: (event: InspectionEvent) => {
      if (actor) {
        const step = stepOf(event, actor);
        // Snapshots cost time: taken only for someone who looks at them.
        if (step) produced.push({ ...step, snapshot: wantSnapshots ? actor.getPersistedSnapshot() : undefined });
      }
      options.inspect?.(event);
    },
  } as never);
  const lines = segment.lines;
  let cursor = 0;
  const diverge = (divergence: ReplayDivergence) => {
    state.divergence = divergence;
  };

  /** Checks what the machines did against the record; false when replay must stop. */
  const match = async (): Promise<boolean> => {
    while (produced.length) {
      const step = produced.shift()!;
      const recorded = lines[cursor];
      if (!recorded) {
        // A killed process never wrote what it was about to do; a run that went on must not do more.
        if (segment.cutShort) return false;
        diverge({ seq: null, at: null, what: 'extra step', expected: 'the end of the record', actual: describe(step) });
        return false;
      }
      const difference = compare(recorded, step);
      if (difference) {
        diverge({ seq: recorded.seq, at: recorded.at, ...difference });
        return false;
      }
      cursor += 1;
      // A suspended iteration (decision `wait`) runs again: it is not a finished one.
      if (step.actor === 'task' && step.event.type === 'xstate.done.actor.iteration' && (step.event.output as { decision?: string } | undefined)?.decision !== 'wait') state.iterations += 1;
      if (options.speed && options.speed > 0) await sleep(Math.max(0, recorded.at - state.lastAt) / options.speed);
      state.lastAt = Math.max(state.lastAt, recorded.at);
      await options.onStep?.({ step: state.steps, seq: recorded.seq, at: recorded.at, actor: step.actor, event: step.event, task: step.task, iteration: step.iteration, snapshot: step.snapshot, segment: index });
      state.steps += 1;
      if (until && reached(step, until)) {
        state.stoppedAt = {
          seq: recorded.seq,
          iteration: step.iteration?.index ?? null,
          state: until.split('.')[1]!,
          snapshot: step.snapshot,
        };
        return false;
      }
    }
    return true;
  };

  try {
    actor.start();
    await quiesce();
    while (!options.signal?.aborted) {
      if (!(await match())) return;
      if (cursor >= lines.length) return;
      const next = lines[cursor]!;
      if (!trigger(next, lines, cursor, actor, pending, clock)) {
        diverge({ seq: next.seq, at: next.at, what: 'missing step', expected: describe(next), actual: `nothing: the replayed machines were waiting (${waitingOn(actor, pending)})` });
        return;
      }
      await quiesce(produced);
      if (!produced.length) {
        diverge({ seq: next.seq, at: next.at, what: 'missing step', expected: describe(next), actual: `nothing: the replayed machines did not react to it (${waitingOn(actor, pending)})` });
        return;
      }
    }
  } finally {
    actor.stop();
  }
}

/** Delivers what caused the recorded line: a finished actor's output, a timer, or an external event. */
function trigger(line: JournalEntry, lines: JournalEntry[], cursor: number, actor: AnyActorRef, pending: Map<string, PendingActor>, clock: SimulatedClock): boolean {
  const type = line.event.type;
  const advance = () => {
    if (line.at > clock.now()) clock.set(line.at);
  };
  const done = /^xstate\.(done|error)\.actor\.(.+)$/.exec(type);
  if (done && done[2] !== 'iteration') {
    const waiting = pending.get(done[2]!);
    if (!waiting) return false;
    advance();
    pending.delete(waiting.id);
    if (done[1] === 'done') waiting.resolve(line.event.output);
    else waiting.reject(new Error(String(line.event.error ?? 'error')));
    return true;
  }
  if (type.startsWith('xstate.after.')) {
    // A line's time is taken just after its transition, a little later than the clock the transition read (by
    // more on a busy machine): the replayed timer may be due a few ms after the recorded line. Go to it.
    const timers = (clock as unknown as { timeouts: Map<unknown, { start: number; timeout: number }> }).timeouts;
    const due = Math.min(...[...timers.values()].map((t) => t.start + t.timeout));
    if (Number.isFinite(due) && due > clock.now() && due > line.at) clock.set(due);
    else advance();
    return true;
  }
  // An iteration suspended by the usage limit ends in the same step as its call: the call is in the line's output.
  const suspendedCall = type === 'xstate.done.actor.iteration' ? (line.event.output as { decision?: string; agent?: unknown } | undefined) : undefined;
  const calling = [...pending.values()].find((p) => p.src === 'callAgent');
  if (suspendedCall?.decision === 'wait' && suspendedCall.agent && calling) {
    advance();
    pending.delete(calling.id);
    calling.resolve(suspendedCall.agent);
    return true;
  }
  // Storing an iteration's record is the one step the journal shows only by its consequence (the next line) —
  // unless that line is an event from outside (a pause, a cancel) that came while the record was being saved:
  // the journal made the answer durable before the save, so such an event can land in between.
  const persisting = type.startsWith('xstate.') ? [...pending.values()].find((p) => p.src === 'persistIteration') : undefined;
  if (persisting) {
    advance();
    pending.delete(persisting.id);
    let absorbed: JournalEntry | undefined;
    for (let i = cursor; i < lines.length && !absorbed; i++) {
      if (lines[i]!.actor === 'task' && lines[i]!.event.type === 'xstate.done.actor.iteration') absorbed = lines[i];
    }
    const failure = (absorbed?.event.output as { failure?: string } | undefined)?.failure;
    const prefix = 'persisting the iteration failed: ';
    if (failure?.startsWith(prefix)) persisting.reject(new Error(failure.slice(prefix.length)));
    else persisting.resolve(undefined);
    return true;
  }
  // A new iteration's first line comes before the task transition that started it (XState reports the child
  // first): what caused both is the next line's event.
  if (type === 'xstate.init') {
    for (let i = cursor + 1; i < lines.length; i++) {
      if (lines[i]!.event.type !== 'xstate.init') return trigger(lines[i]!, lines, i, actor, pending, clock);
    }
    return false;
  }
  if (!type.startsWith('xstate.')) {
    advance();
    const child = (actor.getSnapshot() as { children: Record<string, AnyActorRef | undefined> }).children.iteration;
    const target = line.actor === 'iteration' && child ? child : actor;
    target.send(line.event as never);
    return true;
  }
  return false;
}

/** The run's own statecharts, with every invoked actor answering from the record. */
function replayMachines(now: () => number, pending: Map<string, PendingActor>) {
  const recorded = (src: string) =>
    fromPromise<unknown, unknown>(
      ({ self, signal }) =>
        new Promise((resolve, reject) => {
          const entry: PendingActor = { id: self.id, src, resolve, reject };
          pending.set(self.id, entry);
          signal.addEventListener('abort', () => {
            if (pending.get(self.id) === entry) pending.delete(self.id);
          });
        }),
    );
  const replacing = (machine: { implementations: { actors: Record<string, unknown> } }, except: string[] = []) =>
    Object.fromEntries(Object.keys(machine.implementations.actors).filter((name) => !except.includes(name)).map((name) => [name, recorded(name)]));
  const iterationBase = createIterationMachine(now);
  const iteration = iterationBase.provide({ actors: replacing(iterationBase) as never });
  const taskBase = createTaskMachine(now);
  return taskBase.provide({ actors: { ...(replacing(taskBase, ['iteration']) as object), iteration } as never }) as unknown as AnyActorLogic;
}

/** The first field in which a replayed step differs from the recorded line, or null. */
function compare(recorded: JournalEntry, step: Step): Omit<ReplayDivergence, 'seq' | 'at'> | null {
  const differs = (what: string, expected: unknown, actual: unknown) =>
    JSON.stringify(expected) === JSON.stringify(actual) ? null : { what, expected: JSON.stringify(expected), actual: JSON.stringify(actual) };
  // The most telling difference first: where the machines are, then what moved them.
  const base =
    differs('task state', recorded.task, step.task) ??
    differs('iteration', recorded.iteration, step.iteration) ??
    differs('event', recorded.event.type, step.event.type) ??
    differs('actor', recorded.actor, step.actor);
  if (base) return { ...base, expected: `${describe(recorded)}`, actual: `${describe(step)}`, what: base.what };
  if (step.event.type === 'xstate.done.actor.iteration') {
    const fields = ['index', 'decision', 'decisionRule', 'states', 'attempts', 'retryDelaysMs', 'sessionId', 'failure'] as const;
    const expected = recorded.event.output as Record<string, unknown> | undefined;
    const actual = step.event.output as Record<string, unknown> | undefined;
    for (const field of fields) {
      const difference = differs(`iteration ${String(expected?.index ?? '?')} ${field}`, expected?.[field], actual?.[field]);
      if (difference) return difference;
    }
  }
  return null;
}

function describe(step: { actor: string; event: JournalEvent; task: unknown; iteration: { index: number; state: unknown } | null }): string {
  const where = step.iteration ? `iteration ${step.iteration.index} in ${String(step.iteration.state)}` : 'no iteration running';
  return `${step.actor} ← ${step.event.type}: task ${JSON.stringify(step.task)}, ${where}`;
}

function waitingOn(actor: AnyActorRef, pending: Map<string, PendingActor>): string {
  const snapshot = actor.getSnapshot() as { value: unknown; status: string };
  const actors = [...pending.values()].map((p) => p.src);
  return `task ${JSON.stringify(snapshot.value)} (${snapshot.status})${actors.length ? `, actors running: ${actors.join(', ')}` : ''}`;
}

function reached(step: Step, until: string): boolean {
  const [where, name] = until.split('.');
  if (where === 'task') return step.actor === 'task' && String(step.task) === name;
  return step.iteration !== null && String(step.iteration.index) === where && String(step.iteration.state) === name;
}

/**
 * Lets every promise the last trigger set off settle. Replayed actors wait for nothing but the replay, so a few
 * microtask turns do (a resolved actor → its done event → the next actors started); a macrotask turn is the
 * fallback when something still moved in the last of them.
 */
async function quiesce(produced?: unknown[]): Promise<void> {
  if (produced) {
    let seen = -1;
    for (let turn = 0; turn < 8; turn++) {
      await null;
      if (produced.length === seen && seen > 0) return;
      seen = produced.length;
    }
  }
  await new Promise((resolve) => setImmediate(resolve));
}

function sleep(ms: number): Promise<void> {
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, Math.min(ms, 60_000))) : Promise.resolve();
}
export { parseUntil } from './until.js';
