import type { RunStatus } from './statuses.js';
import type { UsageTotals } from './usage-totals.js';

/**
 * A task's line in `obra status` (`--json` prints these) and its card on the board: the one shape on both
 * engines. A field an engine does not know is null there: Restate's queue keeps no statechart state and no last
 * decision, and only a local task has a worktree branch to merge; only Restate names a worker.
 */
export interface StatusLine {
  runId: string;
  task: string;
  status: RunStatus | 'unreadable';
  /** What became of an ended task's branch: `obra merge` merged it, or `obra discard` removed it; else null. */
  branchOutcome: 'merged' | 'discarded' | null;
  /** The task machine's state, and the running iteration's (`running / awaitingAgent`); null on Restate. */
  state: string | null;
  /** The iteration running, or the number of iterations finished. */
  iteration: number;
  lastDecision: string | null;
  costUsd: number;
  /** What it waits for, in words (null: it is working, or it has ended). */
  waitingFor: string | null;
  /** Why it stands where it does (why it ended, or was blocked), or null. */
  reason: string | null;
  priority: number;
  /** The run it follows (`--after`), or null. */
  after: string | null;
  /** When it was submitted (or started, for `obra run`): the queue's order after the priority. */
  createdAt: string;
  ageMs: number;
  /** Where the board shows it. */
  column: BoardColumn;
  /** The worktree branch, for a local task in a git repository (null once discarded). */
  branch: string | null;
  /** `main @ 1a2b3c4d`: where `obra merge` merged the branch, or null. */
  mergedInto: string | null;
  /** The Restate worker driving it, or null (the local engine names none). */
  worker: string | null;
  /** The agent kind driving it (`claude`, `codex`, ...); null on Restate. */
  agent: string | null;
  /** Its tokens and cost summed over its iterations (src/core/usage-totals.ts); null on Restate (n/a). */
  usage: UsageTotals | null;
  /** Set for an attempt of a race (`obra submit --agents/--attempts`; docs/race.md); null otherwise. */
  race: RaceMark | null;
  /** For a task that resolves another's merge conflict (`obra merge --resolve`): that task's run; else null. */
  resolves: string | null;
  /** For a task whose conflict was handed to an agent: the run that resolves it; else null. */
  resolvedBy: string | null;
  /**
   * Where the task's branch would conflict if it were merged now — with its base branch, or with another
   * unmerged task's branch (both tasks of such a pair carry it) — and in which files; worked out after each
   * iteration's commit (docs/landing.md). [] when none is known (always on Restate).
   */
  conflicts: { with: 'base' | 'task'; runId: string | null; branch: string; files: string[] }[];
}

/** An attempt's place in its race. */
export interface RaceMark {
  id: string;
  attempt: number;
  of: number;
  /** The race's decision is recorded (its last attempt ended). */
  decided: boolean;
  /** Its place in the ranking (1: best), once decided. */
  rank: number | null;
  winner: boolean;
  /** The winner's: why it won; another's: why it ranks behind the one before it; null until decided. */
  why: string | null;
}

export type BoardColumn = 'queued' | 'running' | 'waiting' | 'done' | 'failed';

export const BOARD_COLUMNS: { key: BoardColumn; title: string }[] = [
  { key: 'queued', title: 'Queued' },
  { key: 'running', title: 'Running' },
  { key: 'waiting', title: 'Waiting for a human' },
  { key: 'done', title: 'Done' },
  { key: 'failed', title: 'Failed and blocked' },
];

export function columnOf(status: RunStatus | 'unreadable'): BoardColumn {
  switch (status) {
    case 'queued':
      return 'queued';
    case 'running':
    case 'interrupted':
    case 'paused':
      return 'running';
    case 'escalated':
      return 'waiting';
    case 'done':
      return 'done';
    default:
      return 'failed';
  }
}

/** What the STATUS column says: `merged` or `discarded` for a task whose branch was, else its status. */
export const shownStatus = (line: Pick<StatusLine, 'status' | 'branchOutcome'>): string => line.branchOutcome ?? line.status;

/** What orders the queue: the priority, when the task was queued, and its run id (a tie-break that never ties). */
export interface QueueKey {
  priority: number;
  since: string;
  runId: string;
}

/**
 * The order workers take tasks in, on both engines (src/queue/worker.ts, Restate's queue): the higher priority
 * first, then the oldest, then by run id. `obra status` lists its lines in it.
 */
export function queueOrder(a: QueueKey, b: QueueKey): number {
  return b.priority - a.priority || byCodeUnits(a.since, b.since) || byCodeUnits(a.runId, b.runId);
}

/** ISO times and run ids are ASCII: compared as they are, without a locale's collation (a sort of thousands each look). */
const byCodeUnits = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Status lines in queue order (a line's `createdAt` is when it was queued). */
export function inQueueOrder<T extends StatusLine>(lines: T[]): T[] {
  return lines
    .map((line) => ({ line, key: { priority: line.priority, since: line.createdAt, runId: line.runId } }))
    .sort((a, b) => queueOrder(a.key, b.key))
    .map(({ line }) => line);
}
