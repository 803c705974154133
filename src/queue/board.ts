import type { RunStatus } from '../core/statuses.js';
import { runningIterationOf, taskContextOf, taskStateOf, usageLimitWaitOf } from '../persisted/snapshot.js';
import { RunStore } from '../store/run-store.js';

/**
 * The store's tasks as `obra status` and the viewer's board show them: one line each — status, where its
 * statecharts are, its iteration, the last decision, the cost, what it waits for, its age — and the board's
 * column. Read from each run's small file and the end of its journal, never written.
 */

export interface TaskLine {
  runId: string;
  task: string;
  status: RunStatus | 'unreadable';
  /** The task machine's state, and the running iteration's (`running / awaitingAgent`). */
  state: string;
  iteration: number;
  lastDecision: string | null;
  costUsd: number;
  /** What it waits for, in words (null: it is working, or it has ended). */
  waitingFor: string | null;
  /** Why it stands where it does (why it ended, or was blocked), or null. */
  reason: string | null;
  createdAt: string;
  ageMs: number;
  /** Where the board shows it. */
  column: BoardColumn;
  priority: number;
  /** The worktree branch, for a queued task in a git repository (null once discarded). */
  branch: string | null;
  /** `main @ 1a2b3c4d`: where `obra merge` merged the branch, or null. */
  mergedInto: string | null;
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

export function taskLines(storeDir: string, now = Date.now()): TaskLine[] {
  const store = RunStore.open(storeDir, { create: false });
  return store.listRunIds().map((runId) => {
    try {
      return lineOf(store, runId, now);
    } catch (error) {
      return { runId, task: '?', status: 'unreadable', state: '-', iteration: 0, lastDecision: null, costUsd: 0, waitingFor: null, reason: (error as Error).message, createdAt: '', ageMs: 0, column: 'failed', priority: 0, branch: null, mergedInto: null };
    }
  });
}

function lineOf(store: RunStore, runId: string, now: number): TaskLine {
  // One read of run.json: its record, status and totals, and the journal's last snapshot.
  const handle = store.openRun(runId);
  let latest: unknown;
  let status: RunStatus;
  let totals: { iterations: number; totalCostUsd: number };
  const file = handle.file;
  try {
    status = handle.effectiveStatus();
    totals = handle.totals();
    latest = handle.journal.latest().entry?.snapshot ?? null;
  } finally {
    handle.close();
  }
  const { iterations, totalCostUsd } = totals;
  const context = taskContextOf(latest);
  const iteration = runningIterationOf(latest);
  const taskState = taskStateOf(latest);
  const state = !latest ? (status === 'queued' ? 'queued' : '-') : iteration && iteration.status === 'active' ? `${taskState} / ${iteration.state}` : (taskState ?? '-');
  const space = file.queue?.workspace;
  return {
    runId,
    task: file.task.text,
    status,
    state,
    iteration: iteration?.index ?? iterations,
    lastDecision: typeof context.lastDecision === 'string' ? context.lastDecision : null,
    costUsd: totalCostUsd,
    waitingFor: waitingFor(store, status, file.queue?.after ?? null, latest, file.reason),
    reason: file.reason || null,
    createdAt: file.createdAt,
    ageMs: now - Date.parse(file.createdAt),
    column: columnOf(status),
    priority: file.queue?.priority ?? 0,
    branch: space?.kind === 'worktree' && !file.queue?.discarded ? space.branch : null,
    mergedInto: space?.kind === 'worktree' && file.queue?.merged ? `${space.baseBranch} @ ${file.queue.merged.commit.slice(0, 8)}` : null,
  };
}

function waitingFor(store: RunStore, status: RunStatus, after: string | null, latest: unknown, reason: string): string | null {
  switch (status) {
    case 'queued': {
      if (after) {
        try {
          const followed = store.peekStatus(after).status;
          if (followed !== 'done') return `run ${after} (${followed}) to be done`;
        } catch {
          return `run ${after}, which cannot be read`;
        }
      }
      return 'a worker (`obra work`)';
    }
    case 'escalated':
      return `a human: ${short(String(taskContextOf(latest).question ?? reason))}`;
    case 'paused':
      return '`obra resume`';
    case 'interrupted':
      return '`obra work` or `obra resume` (its process is gone)';
    case 'blocked':
      return null;
    case 'running': {
      const limit = usageLimitWaitOf(latest);
      if (limit) return `the usage limit${limit.limitType ? ` (${limit.limitType})` : ''} to reset, until ${clock(limit.dueAt)}`;
      const iteration = runningIterationOf(latest);
      if (iteration?.state === 'retryingSessionLock') {
        const due = iteration.context.retryDueAt;
        const wait = iteration.context.wait as { kind?: string; shared?: boolean } | undefined;
        const what = wait?.kind === 'rateLimited' ? (wait.shared ? 'the account\'s rate-limit wait' : 'the API (rate limited)') : 'its session to be free';
        return typeof due === 'number' ? `${what}, until ${clock(due)}` : what;
      }
      if (iteration?.state === 'awaitingAgent') return 'the agent';
      return null;
    }
    default:
      return null;
  }
}

const short = (text: string) => (text.length > 80 ? `${text.slice(0, 79)}…` : text);
const clock = (ms: number) => new Date(ms).toISOString().slice(11, 19) + ' UTC';
