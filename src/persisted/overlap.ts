import { z } from 'zod';

/**
 * What a worktree task's branch overlaps with, worked out after each of its iterations' commits (see
 * src/workspace/overlap.ts): the files it changes against its base, and the files a merge would conflict in —
 * with its base branch, and with each other unmerged task branch of the same repository. Kept beside the run
 * (`runs/<id>/overlap.json`); every tip is recorded so that a result is reused while neither side moved.
 */
export const overlapRecordSchema = z.object({
  /** When it was worked out: of two tasks' views of their pair, the later one counts. */
  computedAt: z.string(),
  /** The task's branch tip it was worked out for. */
  tip: z.string(),
  /** The base branch (null when the task started from a commit) and its tip then. */
  baseBranch: z.string().nullable(),
  baseTip: z.string().nullable(),
  /** The files the branch changes against the commit it started from. */
  files: z.array(z.string()),
  /** The files a merge into the base branch would conflict in ([]: it merges cleanly). */
  baseConflicts: z.array(z.string()),
  /** Each other unmerged task branch of the repository, at its tip then, and the files a merge of the two would conflict in. */
  others: z.array(z.object({ runId: z.string(), branch: z.string(), tip: z.string(), conflicts: z.array(z.string()) })),
});
export type OverlapRecord = z.infer<typeof overlapRecordSchema>;
