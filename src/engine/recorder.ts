import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { AnyActorRef, InspectionEvent } from 'xstate';
import { errorText } from '../../machines/errors.js';
import { PersistedSnapshots } from '../persisted/persisted-snapshots.js';
import type { JournalEvent, JournalStep } from '../persisted/journal-entry.js';
import type { CommitStats, JournalPort } from './host.js';

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
export const RECORD_SUMMARY = ['index', 'decision', 'decisionRule', 'reason', 'failure', 'states', 'attempts', 'retryDelaysMs', 'sessionId', 'costUsd', 'turns'] as const;

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
  /** The drive's first lines are made durable with its first step outside, not on their own (see RunPort.writesAreCalls). */
  firstLinesWithFirstStep?: boolean;
  /** Each commit's figures (benchmarks). */
  onCommit?: (stats: CommitStats, encodeMs: number) => void;
  /** Called once when the journal cannot be written: the run must stop at its last saved state. */
  onFailure?: (error: Error) => void;
}

export class TransitionRecorder {
  private scheduled = false;
  /** The next commit must be synced: it holds a rest, an event from outside the engine, or the drive's first lines. */
  private mustSync = true;
  private failed: Error | null = null;
  private encodeMs = 0;
  private checkpointIndex: number | null = null;
  private readonly plainData = new PersistedSnapshots();

  constructor(
    private readonly journal: JournalPort,
    private readonly now: () => number,
    private readonly root: () => AnyActorRef | undefined,
    private readonly options: RecorderOptions,
  ) {
    this.mustSync = !options.firstLinesWithFirstStep;
  }

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
    if (atRest(root) || !step.event.type.startsWith('xstate.')) {
      // At rest, or an event from a person or another process (HUMAN_ANSWER, PAUSE, CANCEL, RESUMED, ...).
      this.mustSync = true;
    }
    // Lines that must not wait are committed right after the burst (the engine has then stopped, or waits for a
    // promise, a timer or a person); the others go with the next commit, at the latest before the next effect.
    if (!this.scheduled && (this.mustSync || this.options.durability === 'strict')) {
      this.scheduled = true;
      queueMicrotask(() => {
        if (this.mustSync && this.inBackground) void this.commitDurably();
        else this.commit(false);
      });
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
    return true;
  }

  /** Writes what the engine did since the last commit, for the host's settle to make durable with the run's end. */
  commitForSettle(): boolean {
    this.mustSync = false;
    return this.commit(false);
  }

  /** Whether durable commits can wait for the disk off the event loop (`transition`, on a host that can). */
  private get inBackground(): boolean {
    return this.options.durability !== 'strict' && this.journal.commitInBackground !== undefined;
  }

  /**
   * Writes what the engine did since the last commit and resolves once everything written is durable. The wait
   * for the disk leaves the event loop when the host can (other tasks of the process go on meanwhile); under
   * `strict`, or on a host that cannot, it is `commit(true)`. Resolves false once the journal has failed.
   */
  async commitDurably(): Promise<boolean> {
    if (this.failed) return false;
    if (!this.inBackground) return this.commit(true);
    this.scheduled = false;
    this.mustSync = false;
    try {
      const stats = await this.journal.commitInBackground!();
      if (stats.lines || stats.synced) this.options.onCommit?.(stats, this.encodeMs);
      this.encodeMs = 0;
    } catch (error) {
      if (!this.failed) {
        this.failed = error as Error;
        this.options.onFailure?.(this.failed);
      }
      return false;
    }
    return !this.failed;
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
      return this.commitDurably();
    }
    // Let the synchronous burst that started this actor finish, so its inspection events are recorded.
    await null;
    return effect === 'none' ? !this.failed : this.commit(false);
  }

}
