import { FINAL_STATUSES, type TaskStatus } from '../../machines/statuses.js';

/**
 * A run's status — the one list of them. A run ends with one of the task machine's final statuses; between
 * drives it rests `escalated` (waiting for a person) or `paused`; `running` while a process drives it, and
 * `interrupted` when the process that drove it is gone (a crash, Ctrl-C): `obra resume` continues it. A task
 * submitted to the queue is `queued` until a worker starts it, or `blocked` for good when the run it follows
 * ended otherwise than `done`.
 */
export const RESTING_STATUSES = ['escalated', 'paused'] as const;
export const RUN_STATUSES = ['queued', 'running', ...FINAL_STATUSES, 'blocked', ...RESTING_STATUSES, 'interrupted'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];
export { FINAL_STATUSES, type TaskStatus };

/** The task machine ended (its statuses), or the queue gave it up (`blocked`): nothing will drive it again. */
export const isFinalStatus = (status: RunStatus): status is TaskStatus | 'blocked' => status === 'blocked' || (FINAL_STATUSES as readonly string[]).includes(status);

/** The statuses `retry` takes: a task that ended without being done, or waits for a human (the workbench offers it then). */
export const RETRYABLE_STATUSES: readonly RunStatus[] = ['failed', 'max_iterations', 'budget_exceeded', 'blocked', 'cancelled', 'escalated'];

/** The exit code of a CLI command that drove a run to this status (the README's table). */
export const EXIT_CODES: Record<RunStatus, number> = {
  done: 0,
  failed: 1,
  escalated: 3,
  max_iterations: 4,
  budget_exceeded: 5,
  cancelled: 6,
  paused: 7,
  running: 8,
  blocked: 9,
  queued: 10,
  interrupted: 130,
};

/**
 * From the worst to the best: what `obra work --until-idle` exits with is the code of the worst status it saw.
 * `blocked` comes after the failures it follows from, so that the exit code names the cause.
 */
export const SEVERITY: RunStatus[] = ['failed', 'budget_exceeded', 'max_iterations', 'blocked', 'cancelled', 'interrupted', 'escalated', 'paused', 'queued', 'running', 'done'];

/** Bad input: unknown flag, bad config, unknown run... (nothing was written). */
export const USAGE_EXIT_CODE = 2;

/** `obra merge`: the task's branch conflicts with its base branch (the merge was undone). */
export const MERGE_CONFLICT_EXIT_CODE = 11;

/** `obra merge --resolve`: the landing waits for the task that resolves its conflict (queued now, or not done yet). */
export const RESOLUTION_PENDING_EXIT_CODE = 12;
/** `obra merge --all` (or A B C): a landing's checks failed; the queue stopped and the base stays at the last green landing. */
export const LANDING_RED_EXIT_CODE = 13;
