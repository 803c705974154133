import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { AnyActorRef, InspectionEvent } from 'xstate';
import type { CommitStats, Journal, JournalEvent, JournalStep } from './journal.js';

/**
 * Turns a run's XState inspection events into journal lines, and decides when they become durable.
 *
 * Every transition of the task machine or of its running iteration is one line, encoded when it happens and
 * written (one write() per group of lines) before anything leaves the process or touches the store: a killed
 * process never loses a transition that led to something outside it. When lines are fdatasync'd is
 * `store.sync`:
 * - `transition` (write-ahead, group commit): one fdatasync makes every line so far durable, and the engine
 *   waits for it, before anything leaves the process (an agent call, a check, a judge), with every event from
 *   outside the engine (a person's answer, a pause, a resume), with the first lines of a drive, and whenever the
 *   run comes to rest (a backoff wait, a human, a pause, the end). Nothing outside ever follows from a
 *   transition that is not on disk. A power cut can take only the lines since the last fdatasync: pure
 *   computation (validation, scores, the decision, the next context and prompt) that a resumed run recomputes
 *   identically, and the last agent answer, which a resume asks for again (as for any call in flight).
 * - `strict`: every burst's lines are fdatasync'd before the next step starts.
 */

export type Durability = 'transition' | 'strict';

/** What an invoked actor does outside the engine: nothing, write the store's own copy, or act outside. */
export type StepEffect = 'none' | 'store' | 'outside';

/** A transition as both the live engine and replay describe it (replay compares these). */
export interface Step {
  actor: 'task' | 'iteration';
  event: JournalEvent;
  task: unknown;
  iteration: { index: number; state: unknown } | null;
}

interface ActorSnapshotLike {
  status: string;
  value: unknown;
  context: { index?: number };
  children: Record<string, AnyActorRef | undefined>;
}

/** The step an inspection event is, or null when it is not a transition of the task or its iteration. */
export function stepOf(event: InspectionEvent, root: AnyActorRef): Step | null {
  if (event.type !== '@xstate.snapshot') return null;
  const isRoot = event.actorRef === root;
  const rootSnapshot = root.getSnapshot() as ActorSnapshotLike;
  const child = rootSnapshot.children?.iteration;
  // A child that already finished (its parent has moved on) is reported by the parent's own transition.
  if (!isRoot && child !== event.actorRef) return null;
  const childSnapshot = child?.getSnapshot() as ActorSnapshotLike | undefined;
  return {
    actor: isRoot ? 'task' : 'iteration',
    event: compactEvent(event.event as JournalEvent),
    task: rootSnapshot.value,
    iteration:
      childSnapshot && childSnapshot.status === 'active' ? { index: childSnapshot.context.index ?? 0, state: childSnapshot.value } : null,
  };
}

/** The fields of a finished iteration's record the journal keeps (the whole record is in iterations.jsonl). */
const RECORD_SUMMARY = ['index', 'decision', 'decisionRule', 'reason', 'failure', 'states', 'attempts', 'retryDelaysMs', 'sessionId', 'costUsd', 'turns'] as const;

/**
 * The journal keeps events small: the type, plus the output of a finished actor (what replay feeds back). A
 * finished iteration's record was made durable in iterations.jsonl just before: its event keeps a summary.
 */
export function compactEvent(event: JournalEvent): JournalEvent {
  if (event.type === 'xstate.done.actor.iteration' && event.output && typeof event.output === 'object') {
    const record = event.output as Record<string, unknown>;
    const summary = Object.fromEntries(RECORD_SUMMARY.map((key) => [key, record[key] ?? null]));
    // A suspended iteration (usage limit) has no record in iterations.jsonl: the call that ended it is kept here
    // (replay feeds it back; a person sees what the CLI said).
    if (record.decision === 'wait') Object.assign(summary, { agent: record.agent ?? null, usageLimit: record.usageLimit ?? null });
    return { type: event.type, output: summary };
  }
  if ('output' in event) return { type: event.type, output: event.output };
  if ('error' in event) return { type: event.type, error: errorText(event.error) };
  return event;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Whether the task or its running iteration is in a state tagged `resting`: it waits (for a timer or a person). */
function atRest(root: AnyActorRef): boolean {
  const snapshot = root.getSnapshot() as { hasTag?(tag: string): boolean; children?: Record<string, AnyActorRef | undefined> };
  if (snapshot.hasTag?.('resting')) return true;
  const child = snapshot.children?.iteration?.getSnapshot() as { status?: string; hasTag?(tag: string): boolean } | undefined;
  return child?.status === 'active' && Boolean(child.hasTag?.('resting'));
}

const CHECKPOINT_EVERY_ITERATIONS = 4;

export interface RecorderOptions {
  durability: Durability;
  /** Each commit's figures (benchmarks). */
  onCommit?: (stats: CommitStats, encodeMs: number) => void;
  /** Called once when the journal cannot be written: the run must stop at its last saved state. */
  onFailure?: (error: Error) => void;
  /**
   * Fault injection for the durability tests: after the line entering `<iteration>.<state>` (or
   * `task.<state>`) is durable, the process freezes, so a test can SIGKILL it in exactly that state.
   */
  stallAt?: string | null;
}

export class TransitionRecorder {
  private scheduled = false;
  /** The next commit must be synced: it holds a rest, an event from outside the engine, or the drive's first lines. */
  private mustSync = true;
  private failed: Error | null = null;
  private encodeMs = 0;
  private pendingSteps: Step[] = [];
  private checkpointIndex: number | null = null;
  private readonly plainData = new PersistedSnapshots();

  constructor(
    private readonly journal: Journal,
    private readonly now: () => number,
    private readonly root: () => AnyActorRef | undefined,
    private readonly options: RecorderOptions,
  ) {}

  get failure(): Error | null {
    return this.failed;
  }

  /** Records the transition an inspection event reports; returns it (with its time) or null. */
  observe(event: InspectionEvent): (Step & { at: number }) | null {
    const root = this.root();
    if (!root || this.failed) return null;
    const step = stepOf(event, root);
    if (!step) return null;
    const at = this.now();
    const t0 = performance.now();
    // Every few iterations, the first line of an iteration (where the state is smallest) is a whole snapshot:
    // finding the latest state never needs more than the lines of the last few iterations.
    const index = step.iteration?.index ?? null;
    const checkpoint = index !== null && (this.checkpointIndex === null || index - this.checkpointIndex >= CHECKPOINT_EVERY_ITERATIONS);
    if (checkpoint) this.checkpointIndex = index;
    const line: JournalStep = { at, ...step, snapshot: this.persisted(root) };
    this.journal.add(line, { checkpoint });
    this.encodeMs += performance.now() - t0;
    if (this.options.stallAt) this.pendingSteps.push(step);
    if (atRest(root) || !step.event.type.startsWith('xstate.')) {
      // At rest, or an event from a person or another process (HUMAN_ANSWER, PAUSE, CANCEL, RESUMED, ...).
      this.mustSync = true;
    }
    // Lines that must not wait are committed right after the burst (the engine has then stopped, or waits for a
    // promise, a timer or a person); the others go with the next commit, at the latest before the next effect.
    if (!this.scheduled && (this.mustSync || this.options.durability === 'strict' || this.options.stallAt)) {
      this.scheduled = true;
      queueMicrotask(() => this.commit(false));
    }
    return { ...step, at };
  }

  /**
   * `root.getPersistedSnapshot()`, made cheaper (checked equal to it by a test, step by step): XState walks
   * every context, every time, looking for actor references to replace, and builds every object anew; Obra's
   * contexts are plain data whose parts keep their identity from step to step, so each part is looked at once,
   * and whatever did not move is given as the very same object (see PersistedSnapshots).
   */
  persisted(root: AnyActorRef): unknown {
    return this.plainData.persist(root);
  }

  /** Writes a marker line about the engine itself (resume, interruption) and makes it durable with the rest. */
  marker(event: JournalEvent): void {
    if (this.failed) return;
    this.journal.marker(this.now(), event);
    this.commit(true);
  }

  /**
   * Writes what the engine did since the last commit, and fdatasyncs it when asked (`sync`), when the mode or
   * the lines call for it (see above). Returns false once the journal has failed.
   */
  commit(sync: boolean): boolean {
    this.scheduled = false;
    if (this.failed) return false;
    const synced = sync || this.mustSync || this.options.durability === 'strict';
    if (!this.journal.hasPending && !synced) return true;
    try {
      const stats = this.journal.commit(synced);
      this.mustSync = false;
      if (stats.lines || stats.synced) this.options.onCommit?.(stats, this.encodeMs);
      this.encodeMs = 0;
    } catch (error) {
      this.failed = error as Error;
      this.options.onFailure?.(this.failed);
      return false;
    }
    if (this.options.stallAt) this.stallIfAsked();
    return true;
  }

  /**
   * What an invoked actor awaits before it starts working. Before it touches the store (the iteration record)
   * the lines so far are written; before it acts outside the process they are made durable (write-ahead).
   * Resolves false once the journal has failed.
   */
  async beforeStep(effect: StepEffect): Promise<boolean> {
    if (effect === 'outside') {
      // Once per effect, let the event loop turn: with an agent that answers in-process, the engine would
      // otherwise run promise after promise and starve signals, timers and the inspector.
      await yieldToEventLoop();
      return this.commit(true);
    }
    // Let the synchronous burst that started this actor finish, so its inspection events are recorded.
    await null;
    return effect === 'none' ? !this.failed : this.commit(false);
  }

  private stallIfAsked(): void {
    const spec = this.options.stallAt!;
    const steps = this.pendingSteps;
    this.pendingSteps = [];
    const hit = steps.some((s) =>
      spec.startsWith('task.') ? s.actor === 'task' && `task.${String(s.task)}` === spec : s.iteration !== null && `${s.iteration.index}.${String(s.iteration.state)}` === spec,
    );
    if (!hit) return;
    this.journal.commit(true);
    // Durable now; freeze without running anything else, as if the machine stopped dead right here.
    process.stderr.write(`obra: stalled in ${spec} (OBRA_TEST_STALL_AT), waiting to be killed\n`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  }
}

/** Obra's machines have no history states: every persisted snapshot shares this one empty object. */
const NO_HISTORY = Object.freeze({});

/** An actor's persisted snapshot, the snapshot it was made from, its entry in its parent's, its children's. */
interface Persisted {
  snapshot: unknown;
  json: unknown;
  entry: unknown;
  children: Record<string, unknown> | null;
}

/**
 * XState's `getPersistedSnapshot()` for machine actors whose contexts hold only plain data, without walking
 * the same objects again and again: an object once found free of actor references stays so (Obra never
 * mutates context data; every change is a new object). Anything unusual falls back to XState's own.
 */
class PersistedSnapshots {
  private readonly plain = new WeakSet<object>();
  /**
   * Each actor's last snapshot and what it gave: an actor that did not move gives the very same object again,
   * and so do its entry among its parent's children and the children object itself — which lets the journal's
   * diff (by identity) skip them without looking inside.
   */
  private readonly last = new WeakMap<AnyActorRef, Persisted>();

  persist(actor: AnyActorRef): unknown {
    return this.persisted(actor).json;
  }

  private persisted(actor: AnyActorRef): Persisted {
    const snapshot = actor.getSnapshot() as Record<string, unknown> | undefined;
    const before = this.last.get(actor);
    if (before && before.snapshot === snapshot) {
      // The same snapshot: the same JSON, unless one of its children moved (a parent's snapshot stays the very
      // same object while only its invoked child moves).
      if (!before.children) return before;
      const children = this.childrenOf(snapshot!.children as Record<string, AnyActorRef>, before.children);
      return children === before.children ? before : this.remember(actor, snapshot, { ...(before.json as object), children }, children);
    }
    if (!snapshot || typeof snapshot !== 'object' || !('machine' in snapshot) || !('_nodes' in snapshot)) {
      // A promise actor's persisted snapshot is its snapshot: it stays valid while the snapshot does.
      return this.remember(actor, snapshot, actor.getPersistedSnapshot(), null);
    }
    const { _nodes, tags, machine, children, context, can, hasTag, matches, getMeta, toJSON, ...json } = snapshot;
    const history = json.historyValue as Record<string, unknown> | undefined;
    // Only a machine snapshot found plain is remembered: its context is the last one checked for this actor.
    const checked = (before?.snapshot as { context?: unknown } | undefined)?.context;
    if ((history && Object.keys(history).length) || !this.contextIsPlain(context, checked)) {
      // Anything unusual: XState's own, every time (nothing cached).
      const persisted = actor.getPersistedSnapshot();
      return { snapshot: undefined, json: persisted, entry: this.entryOf(actor, persisted), children: null };
    }
    const childrenJson = this.childrenOf(children as Record<string, AnyActorRef>, null);
    return this.remember(actor, snapshot, { ...json, context, children: childrenJson, historyValue: NO_HISTORY }, childrenJson);
  }

  /** The children's entries; `previous` itself when every entry is the same object as there. */
  private childrenOf(refs: Record<string, AnyActorRef>, previous: Record<string, unknown> | null): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    let same = previous !== null;
    let count = 0;
    for (const id in refs) {
      const entry = this.persisted(refs[id]!).entry;
      out[id] = entry;
      if (same && previous![id] !== entry) same = false;
      count += 1;
    }
    return same && count === Object.keys(previous!).length ? previous! : out;
  }

  private remember(actor: AnyActorRef, snapshot: unknown, json: unknown, children: Record<string, unknown> | null): Persisted {
    const made = { snapshot, json, entry: this.entryOf(actor, json), children };
    this.last.set(actor, made);
    return made;
  }

  /** What a parent's persisted snapshot holds for a child. */
  private entryOf(actor: AnyActorRef, json: unknown): unknown {
    const ref = actor as AnyActorRef & { _syncSnapshot?: unknown; systemId?: string };
    return { snapshot: json, src: ref.src, systemId: ref.systemId, syncSnapshot: ref._syncSnapshot };
  }

  /**
   * A context with no actor reference in it: only the values that are not the very same as in the actor's
   * previous (already checked) context are looked into.
   */
  private contextIsPlain(context: unknown, previous: unknown): boolean {
    if (context === previous) return true;
    if (previous === null || typeof previous !== 'object' || context === null || typeof context !== 'object') return this.isPlain(context);
    if (isActorRef(context)) return false;
    const before = previous as Record<string, unknown>;
    for (const key in context as Record<string, unknown>) {
      const value = (context as Record<string, unknown>)[key];
      if (value !== before[key] && !this.isPlain(value)) return false;
    }
    return true;
  }

  /** No actor reference anywhere inside (what XState's persistContext looks for). */
  private isPlain(value: unknown): boolean {
    if (value === null || typeof value !== 'object') return true;
    if (this.plain.has(value)) return true;
    if (isActorRef(value)) return false;
    for (const key in value as Record<string, unknown>) if (!this.isPlain((value as Record<string, unknown>)[key])) return false;
    this.plain.add(value);
    return true;
  }
}

/** What XState's persistContext takes for an actor reference. */
const isActorRef = (value: object) => 'sessionId' in value && 'send' in value && 'ref' in value;
