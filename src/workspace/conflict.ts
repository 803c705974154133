import { UserError } from '../core/errors.js';
import { MERGE_CONFLICT_EXIT_CODE } from '../core/statuses.js';

/** How a task's branch is landed on its base branch (config `merge.strategy`, `--strategy`). */
export const MERGE_STRATEGIES = ['merge', 'rebase', 'squash'] as const;
export type MergeStrategy = (typeof MERGE_STRATEGIES)[number];

/**
 * A landing that conflicts, as a value: which task, which branch at which commit, onto which base branch at
 * which commit, and the files — enough to start a resolution from (the merge is undone; nothing was changed).
 */
export interface MergeConflict {
  runId: string;
  repo: string;
  /** The task's branch and its tip. */
  branch: string;
  tip: string;
  /** The base branch, and the commit the landing was tried on. */
  into: string;
  baseCommit: string;
  strategy: MergeStrategy;
  /** The paths git left conflicted. */
  files: string[];
}

/** A conflict as the CLI reports it: one line, exit code 11, with the conflict for whoever resolves it. */
export class MergeConflictError extends UserError {
  constructor(
    message: string,
    readonly conflict: MergeConflict,
  ) {
    super(message, MERGE_CONFLICT_EXIT_CODE);
  }
}
