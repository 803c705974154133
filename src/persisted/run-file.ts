import { z } from 'zod';
import { AGENT_KINDS } from '../core/agent-kinds.js';
import { RUN_STATUSES } from '../core/statuses.js';

/**
 * The run's small record (`run.json` for the files host): what the run is, how it stands, and what a resume or a
 * replay starts from. Rewritten only when a run starts, comes to rest or ends — never per transition.
 */

/**
 * The store's format version: a file of another version is named and left alone. Version 3 added queued runs
 * (the `queue` field, the `queued` and `blocked` statuses); version 2 files are version 3 files without them, so
 * both are read, and a version 2 store is marked 3 when it is opened to add runs (`RunStore.open` with `create`).
 */
export const STORE_VERSION = 3;
export const READABLE_VERSIONS = [2, 3] as const;

export const taskSpecSchema = z.object({
  text: z.string(),
  workdir: z.string(),
  checks: z.array(z.string()),
  requiredMarkers: z.array(z.string()),
  /** A conflict's resolution (`obra merge --resolve`): Obra's own gate on conflict markers. */
  conflictGate: z.object({ since: z.string(), files: z.array(z.string()), tip: z.string().optional() }).optional(),
});

/** See src/core/usage-totals.ts. */
export const usageTotalsSchema = z.object({
  calls: z.number().int(),
  inputTokens: z.number(),
  outputTokens: z.number(),
  cachedInputTokens: z.number(),
  costUsd: z.number(),
  estimated: z.boolean(),
  unpricedCalls: z.number().int(),
});

/** Where a queued task works: a folder, or a git worktree of its own on the branch `obra/<runId>`. */
export const workspaceSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('dir'), path: z.string() }),
  z.object({
    kind: z.literal('worktree'),
    /** The user's repository (its top folder). */
    repo: z.string(),
    /** `obra/<runId>`. */
    branch: z.string(),
    /** What the task started from, as given (`main`, a tag, a commit), and the commit it named then. */
    base: z.string(),
    baseCommit: z.string(),
    /** The branch the base named (what `obra merge` merges into), or null when it named a commit. */
    baseBranch: z.string().nullable(),
    /** The worktree's folder, under the store. */
    path: z.string(),
    /**
     * The branch of the run this task follows (`--after`) in the same repository, when it was given no base of
     * its own: the task starts from where that branch ended, the followed run's work included. Once moved there,
     * `base` names that branch and `baseCommit` its last commit.
     */
    follows: z.string().optional(),
  }),
]);
export type Workspace = z.infer<typeof workspaceSchema>;

/** A task submitted to the queue (`obra submit`): what orders it, and where it works. */
export const queueEntrySchema = z.object({
  priority: z.number().int(),
  /** The run this one follows: it starts only once that one is `done`. */
  after: z.string().nullable(),
  submittedAt: z.string(),
  workspace: workspaceSchema,
  /** Set when `obra discard` removed the worktree and the branch. */
  discarded: z.boolean().optional(),
  /** Set when `obra merge` merged the branch: the merge commit, and when. */
  merged: z.object({ commit: z.string(), at: z.string() }).optional(),
  /** Set for an attempt of a race (`obra submit --agents/--attempts`): the race, and which attempt of how many. */
  race: z.object({ id: z.string().regex(/^[A-Za-z0-9_-]+$/), attempt: z.number().int().positive(), of: z.number().int().positive() }).optional(),
  /**
   * Set on a task whose landing conflicted and was handed to an agent (`obra merge --resolve`): the run that
   * resolves it. `obra merge` of this task lands that run's resolution once it is done.
   */
  resolution: z.object({ runId: z.string(), at: z.string() }).optional(),
  /**
   * Set on a task that resolves another's conflict: the run whose branch it merges into the base (`runId`,
   * `branch`), that branch's commit it merges (`tip`), and the files that conflicted. Its own branch starts at
   * the base (`workspace.baseCommit`); its worktree holds the merge in progress when a worker starts it.
   */
  resolves: z.object({ runId: z.string(), branch: z.string(), tip: z.string(), files: z.array(z.string()) }).optional(),
});
export type QueueEntry = z.infer<typeof queueEntrySchema>;

export const runFileSchema = z.object({
  version: z.literal(READABLE_VERSIONS),
  runId: z.string().regex(/^[A-Za-z0-9_-]+$/),
  task: taskSpecSchema,
  status: z.enum(RUN_STATUSES),
  reason: z.string(),
  /** The question put to a human while the run waits in `awaitingHuman`. */
  question: z.string().nullable().default(null),
  createdAt: z.string(),
  updatedAt: z.string(),
  finishedAt: z.string().nullable(),
  sessionId: z.string().nullable(),
  /** Totals as of the last time the run came to rest (a live run's are counted from iterations.jsonl). */
  iterations: z.number().int(),
  totalCostUsd: z.number(),
  /** Tokens and cost summed over the iterations, as of the last time the run came to rest (absent before). */
  usage: usageTotalsSchema.optional(),
  /** The effective config the run started with (resume and replay use it, not today's config). */
  config: z.record(z.string(), z.unknown()),
  /** The task machine's input: replay starts the machines from it. */
  input: z.record(z.string(), z.unknown()),
  /** Enough to rebuild the agent on resume: its name, and for a CLI agent its kind, binary and extra env. */
  agent: z.object({ name: z.string(), kind: z.enum(AGENT_KINDS).optional(), command: z.string().optional(), env: z.record(z.string(), z.string()).optional() }),
  /** Set for a task submitted to the queue (`obra submit`). */
  queue: queueEntrySchema.optional(),
});
export type RunFile = z.infer<typeof runFileSchema>;
export type NewRun = Omit<RunFile, 'version' | 'updatedAt' | 'finishedAt' | 'iterations' | 'totalCostUsd' | 'usage' | 'status' | 'reason' | 'question'> & { status?: 'running' | 'queued' };

/** Says what is wrong with a file from another store version, before the schema's field-level complaint. */
export function versionAdvice(kind: string) {
  return (json: unknown): string | null => {
    const version = (json as { version?: unknown } | null)?.version;
    if (typeof version !== 'number' || (READABLE_VERSIONS as readonly number[]).includes(version)) return null;
    const reads = `this Obra reads versions ${READABLE_VERSIONS.join(' and ')}`;
    return version > STORE_VERSION
      ? `written by a newer Obra (${kind} version ${version}; ${reads}) — upgrade Obra to use it`
      : `written by an older Obra (${kind} version ${version}; ${reads}) — keep using the Obra that wrote it, or start a new store with --db <folder>`;
  };
}
