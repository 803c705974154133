/**
 * How a task ends: the status each final state of the task machine sets (and the machine's output carries).
 * `src/core/statuses.ts` builds the run's statuses on these: the one list of them.
 */
export const FINAL_STATUSES = ['done', 'failed', 'max_iterations', 'budget_exceeded', 'cancelled'] as const;
export type TaskStatus = (typeof FINAL_STATUSES)[number];
