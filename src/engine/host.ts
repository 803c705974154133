import type { TaskEvent } from '../../machines/task.machine.js';
import type { AccountLimits } from '../agents/account-limits.js';
import type { Agent } from '../agents/agent.js';
import type { CallSlots } from '../agents/call-slots.js';
import type { IterationRecord, RunStatus } from '../core/types.js';
import type { JournalEvent, JournalStep } from '../persisted/journal-entry.js';
import type { runChecks } from '../scoring/checks.js';
import type { Clock } from './clock.js';
import type { RunResult } from './run-result.js';

/**
 * What the engine core needs from the place a run lives — its host. The core drives the task and iteration
 * statecharts and knows nothing about files: the files host (src/hosts/files/) keeps a run in a store folder, the
 * memory host (src/hosts/memory/) in objects, and a distributed host keeps it wherever its engine does.
 *
 *   host.run       the run's journal and records, taken at the start of a drive and let go at its end
 *   host.clock     timers and the time (a SimulatedClock in tests and replay)
 *   host.effects   the work outside the engine: the agent, the user's checks, the account's limits
 *   host.control   events from outside the process (pause, cancel)
 */
export interface EngineHost {
  run: RunPort;
  clock: Clock;
  effects: Effects;
  /** Subscribes to PAUSE / CANCEL sent from elsewhere; returns the unsubscribe. */
  control?: (send: (event: TaskEvent) => void) => () => void;
}

/** One run's storage, as a drive sees it. */
export interface RunPort {
  readonly runId: string;
  /** Where the store is, in words (the files host: its folder), for progress lines. */
  readonly where: string;
  readonly journal: JournalPort;
  /**
   * Takes the run for this drive (the files host: its lock, then the task's worktree) and marks it running.
   * Throws (rejects) when it cannot.
   */
  begin(): void | Promise<void>;
  /**
   * Keeps a finished iteration's record, once (a restored `persisting` runs again): true when it was new. A host
   * may do more here, safely repeated (the files host commits a worktree task's changes).
   */
  saveIteration(record: IterationRecord): boolean | Promise<boolean>;
  /**
   * Whether `saveIteration` acts outside the process (commits a worktree, pushes a branch, writes the record to
   * another machine): then every transition before it, the agent's answer included, is made durable first, so
   * that a crash between the two finds the answer in the journal and does the save again, never the call.
   */
  readonly savesOutside?: boolean;
  /**
   * Whether every durable write is a call to another machine (Restate): the drive's first lines are then made
   * durable with its first step outside, not on their own (a drive cut before that step loses only pure
   * computation, which a resumed run redoes the same), and its last ones by `settle`, which carries them with the
   * run's end. Two calls a drive less.
   */
  readonly writesAreCalls?: boolean;
  /** Makes the records durable, writes how the run stands, lets the run go, and says what it looks like now. */
  settle(outcome: RunOutcome): RunResult | Promise<RunResult>;
  /** Lets the run go without writing anything more (its storage failed): it stays resumable. */
  abandon(): void;
}

export interface RunOutcome {
  status: RunStatus;
  reason: string;
  question: string | null;
  sessionId: string | null;
}

/**
 * The journal as the core writes it: a transition is queued when it happens, written with the others of its
 * burst in one `commit`, and made durable when `commit(true)` — the core decides when (write-ahead, see
 * src/engine/recorder.ts). Every method throws a one-line UserError when the storage fails.
 */
export interface JournalPort {
  add(step: JournalStep, options?: { checkpoint?: boolean }): number;
  marker(at: number, event: JournalEvent): number;
  readonly hasPending: boolean;
  commit(sync: boolean): CommitStats;
  /**
   * `commit(true)` whose wait for the disk leaves the event loop free (the files host: fdatasync in libuv's
   * thread pool), so a process driving many tasks goes on with the others meanwhile. Optional: without it the
   * core calls `commit(true)`.
   */
  commitInBackground?(): Promise<CommitStats>;
  /** After a restore the core knows no previous entry: the next one is written whole. */
  restart(): void;
}

export interface CommitStats {
  lines: number;
  bytes: number;
  /** Whether something was made durable (there was something written since the last time). */
  synced: boolean;
  /** Milliseconds spent writing and making durable. */
  writeMs: number;
  syncMs: number;
}

/** The work outside the engine. */
export interface Effects {
  agent: Agent;
  /** Runs the user's check commands; the shell runner by default. */
  runChecks?: typeof runChecks;
  /** The account's limits (usage, rate), shared by the tasks of a store. */
  limits?: AccountLimits;
  /** The cap on agent calls in flight across the store's tasks. */
  slots?: CallSlots;
}
