import { resolve } from 'node:path';
import { z } from 'zod';
import { AGENT_KINDS, configSchema, type AgentKind, type ObraConfig } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import { isFinalStatus, RETRYABLE_STATUSES } from '../core/statuses.js';
import type { QueueEntry } from '../persisted/run-file.js';
import { runMergeQueue, type MergeQueueResult } from '../queue/merge-queue.js';
import { submitBatch, submitTasks } from '../queue/submit.js';
import type { MergeStrategy } from '../workspace/conflict.js';
import { taskEntrySchema } from '../queue/tasks-file.js';
import { RunStore } from '../store/run-store.js';
import { recordMerged } from '../queue/record-merged.js';
import { landResolution, pendingResolution, resolutionPending, startResolution } from '../queue/resolve.js';
import { MergeConflictError } from '../workspace/conflict.js';
import { diffOf, discardWorktree, mergeInto, type WorktreeSpace } from '../workspace/worktree.js';
import { agentSectionOf } from '../config/flags.js';

/**
 * What can be done to the tasks of a store, one function per action, shared by the CLI (`obra submit`,
 * `obra diff`, `obra merge`, `obra discard`, `obra retry`), the HTTP API of `obra view` and `obra mcp`: the same
 * checks, the same one-line errors. Each returns what happened; the caller prints it or sends it.
 */

/**
 * A task as the API and the MCP server take it: a tasks-file entry (`agent` a kind, `agents`/`attempts` a race), where
 * `agent` may also name the binary of the configured kind (as `--agent-bin`).
 */
export const submitEntrySchema = taskEntrySchema.omit({ name: true }).extend({
  agent: z.string().min(1, `the agent must be a kind (${AGENT_KINDS.join(', ')}) or the path of the configured kind's binary`).optional(),
});
export type SubmitEntry = z.input<typeof submitEntrySchema>;

/** What a submit queued: the run, or for a race its id (`obra diff`/`merge` of it take the winner) and its attempts. */
export interface Submitted {
  runId: string;
  raceId?: string;
  runIds?: string[];
}

/** Queues one task (or one race) given as JSON; `repo` is resolved against `cwd`. Bad input is one `UserError` line. */
export async function submitEntry(body: unknown, scope: { storeDir: string; config: ObraConfig; cwd?: string }): Promise<Submitted> {
  const parsed = submitEntrySchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const what =
      issue.code === 'unrecognized_keys' ? `unknown field "${issue.keys.join('", "')}" (the fields are ${Object.keys(submitEntrySchema.shape).join(', ')})`
      : issue.path.length ? `${issue.path.join('.')}: ${issue.path[0] === 'task' && issue.code === 'invalid_type' ? 'missing — say what the agent should do' : issue.message}`
      : 'expected a JSON object with at least "task"';
    throw new UserError(`the task is not valid: ${what}`);
  }
  const entry = parsed.data;
  const kind = (AGENT_KINDS as readonly string[]).includes(entry.agent ?? '') ? (entry.agent as AgentKind) : undefined;
  if (kind && entry.agents) throw new UserError('the task is not valid: give either agent or agents, not both');
  const binary = entry.agent && !kind ? entry.agent : undefined;
  const config = binary ? withAgentCommand(scope.config, binary) : scope.config;
  const { runIds, races } = await submitBatch(
    [{ task: entry.task, checks: entry.checks, repo: entry.repo === undefined ? undefined : resolve(scope.cwd ?? process.cwd(), entry.repo), base: entry.base, priority: entry.priority, after: entry.after, runId: entry.run_id, ...(kind ? { agentKind: kind } : {}), ...(entry.agents ? { agents: entry.agents } : {}), ...(entry.attempts !== undefined ? { attempts: entry.attempts } : {}) }],
    { config, storeDir: scope.storeDir },
  );
  const race = races[0];
  return race ? { runId: race.raceId, raceId: race.raceId, runIds: race.runIds } : { runId: runIds[0]! };
}

/** The config with the configured kind's binary replaced (`agent.local` is Claude Code's section). */
function withAgentCommand(config: ObraConfig, command: string): ObraConfig {
  const section = agentSectionOf(config.agent.kind);
  return { ...config, agent: { ...config.agent, [section]: { ...config.agent[section], command } } };
}

/** A queued task's worktree, its status and its queue entry; a run without a worktree of its own is refused. */
export function taskSpace(runId: string, storeDir: string) {
  const store = RunStore.open(resolve(storeDir), { create: false });
  const handle = store.openRun(runId);
  const file = handle.file;
  const status = handle.effectiveStatus();
  handle.close();
  const space = file.queue?.workspace;
  if (space?.kind !== 'worktree') throw new UserError(`run ${runId} has no worktree of its own (it ${file.queue ? `works in the folder ${file.task.workdir}` : 'was started with `obra run`'}) — see its changes there`);
  if (file.queue?.discarded) throw new UserError(`run ${runId}'s worktree and branch were discarded`);
  return { store, space: space as WorktreeSpace, status, queue: file.queue as QueueEntry };
}

/** The task's changes against the commit it started from ('' when it committed none). */
export async function diffRun(runId: string, storeDir: string): Promise<{ diff: string; note: string | null }> {
  const { space } = taskSpace(runId, storeDir);
  const diff = await diffOf(space);
  return { diff, note: diff ? null : `run ${runId} has committed no change yet (${space.branch} is at ${space.base})` };
}

export interface MergeOutcome {
  runId: string;
  /** The commit that landed it (null: it did not land, a resolution was queued instead). */
  commit: string | null;
  already: boolean;
  /** The run that resolved its conflict (landed now), or that was queued to resolve it (`resolve: 'agent'`). */
  resolvedBy?: string;
  /** Set when the merge conflicted and a resolution task was queued (or was under way): it has not landed. */
  resolution?: { runId: string; files: string[]; already: boolean };
  message: string;
}

/**
 * Merges the task's branch into its base branch. A conflict is a `UserError` with exit code 11 and nothing
 * changes — or, with `resolve: 'agent'`, a task that resolves it is queued (src/queue/resolve.ts). A task whose
 * resolution is done lands it; one whose resolution is under way is refused (exit code 12).
 */
export async function mergeRun(runId: string, storeDir: string, options: { resolve?: 'agent' | 'human' } = {}): Promise<MergeOutcome> {
  const { store, space, status, queue } = taskSpace(runId, storeDir);
  if (status === 'running' || status === 'queued') throw new UserError(`run ${runId} is ${status}: merge it once it has ended (or pause it first); nothing was changed`);
  // A resolution lands with the task it resolves, as one merge commit (never its iteration commits).
  if (queue.resolves && queue.merged) return { runId, commit: queue.merged.commit, already: true, message: `run ${runId}'s resolution landed with ${queue.resolves.branch} already (${queue.merged.commit.slice(0, 12)}); nothing was changed` };
  if (queue.resolves) throw new UserError(`run ${runId} resolves the conflict of run ${queue.resolves.runId}: land it with \`obra merge ${queue.resolves.runId}\`; nothing was changed`);
  const pending = pendingResolution(store.dir, queue);
  if (pending?.status === 'done') {
    const landed = await landResolution({ storeDir: store.dir, task: runId });
    return { runId, commit: landed.commit, already: false, resolvedBy: landed.resolvedBy, message: landed.message };
  }
  if (pending && !isFinalStatus(pending.status)) throw resolutionPending(runId, space.branch, space.baseBranch, pending);
  let merged: { commit: string; already: boolean };
  try {
    merged = await mergeInto(space, runId);
  } catch (error) {
    if (!(error instanceof MergeConflictError)) throw error;
    if (options.resolve !== 'agent') throw new MergeConflictError(`${error.message}, or have an agent resolve it (\`obra merge --resolve ${runId}\`)`, error.conflict);
    const started = await startResolution({ storeDir: store.dir, task: runId, base: space.baseBranch ?? undefined, conflict: { files: error.files } });
    const files = started.files.join(', ');
    return {
      runId,
      commit: null,
      already: false,
      resolvedBy: started.runId,
      resolution: started,
      message: started.already
        ? `run ${started.runId} is resolving the conflict of ${space.branch} with ${space.baseBranch} already; nothing was changed`
        : `${space.branch} conflicts with ${space.baseBranch} in ${files}: queued run ${started.runId} to resolve it (\`obra work\` drives it); \`obra merge ${runId}\` lands it once that run is done; nothing was changed`,
    };
  }
  const { commit, already } = merged;
  if (queue.merged?.commit !== commit) recordMerged(store, runId, commit);
  const message = already
    ? `${space.branch} was merged into ${space.baseBranch} in ${space.repo} already (${commit.slice(0, 12)}); nothing was changed`
    : `merged ${space.branch} into ${space.baseBranch} in ${space.repo} (${commit.slice(0, 12)})`;
  return { runId, commit, already, message };
}

/**
 * The merge queue: lands the done tasks named (or `all`) one after another on their base branches, the checks
 * before each move (src/queue/merge-queue.ts). A conflict is a `MergeConflictError` (exit 11), a red landing a
 * `UserError` with exit 13; the base is then at the last green landing.
 */
export async function landRuns(
  runIds: string[] | 'all',
  scope: { storeDir: string; config: ObraConfig; strategy?: MergeStrategy; progress?: (line: string) => void },
): Promise<MergeQueueResult> {
  const store = RunStore.open(resolve(scope.storeDir), { create: false });
  return runMergeQueue({
    store,
    runIds,
    strategy: scope.strategy ?? scope.config.merge.strategy,
    checkTimeoutMs: scope.config.task.check_timeout * 1000,
    progress: scope.progress,
  });
}

/** Removes the task's worktree and branch (refused while it runs; a queued task is cancelled with them). */
export async function discardRun(runId: string, storeDir: string): Promise<{ runId: string; message: string }> {
  const { store, space, status, queue } = taskSpace(runId, storeDir);
  if (status === 'running') throw new UserError(`run ${runId} is running: stop it first (\`obra cancel ${runId}\`); nothing was removed`);
  const handle = store.openRun(runId);
  try {
    // Taken for the time it takes: no worker may start it meanwhile.
    handle.acquireLock();
    await discardWorktree(space);
    const status = handle.file.status;
    handle.update({ queue: { ...queue, discarded: true }, ...(status === 'queued' ? { status: 'cancelled', reason: 'discarded before it started', finishedAt: new Date().toISOString() } : {}) });
  } finally {
    handle.releaseLock();
    handle.close();
  }
  return { runId, message: `removed the worktree ${space.path} and the branch ${space.branch}` };
}

/**
 * Queues a failed (or escalated) task again, as a new run with the same task, checks, folder, base, priority and
 * config; the old run is kept as it is, for its history. A waiting one is cancelled (it would wait for ever).
 */
export async function retryRun(runId: string, storeDir: string): Promise<{ runId: string; retried: string; message: string }> {
  const store = RunStore.open(resolve(storeDir), { create: false });
  const { file, status } = store.peekStatus(runId);
  if (!file.queue) throw new UserError(`run ${runId} was started with \`obra run\`, not queued — start it again with \`obra submit\``);
  if (file.queue.resolves) throw new UserError(`run ${runId} resolved the conflict of run ${file.queue.resolves.runId}: resolve it anew with \`obra merge --resolve ${file.queue.resolves.runId}\``);
  if (!RETRYABLE_STATUSES.includes(status)) throw new UserError(`run ${runId} is ${status}: only a task that failed, was blocked or cancelled, or waits for a human can be retried`);
  const parsed = configSchema.safeParse(file.config);
  if (!parsed.success) throw new UserError(`${store.runDir(runId)}/run.json holds a config this Obra cannot read; submit the task again with \`obra submit\``);
  // The run's checks already hold the config's: the new run gets them once, as its config's.
  const config = { ...parsed.data, task: { ...parsed.data.task, checks: file.task.checks } };
  if (file.agent.name === 'claude-code' && typeof file.agent.command === 'string') config.agent = { ...config.agent, local: { ...config.agent.local, command: file.agent.command } };
  const space = file.queue.workspace;
  const [retried] = await submitTasks([{ task: file.task.text, repo: space.kind === 'worktree' ? space.repo : space.path, base: space.kind === 'worktree' ? space.base : undefined, priority: file.queue.priority }], {
    config,
    storeDir: store.dir,
  });
  if (status === 'escalated') {
    const { requestCancel } = await import('../hosts/files/cancel.js');
    await requestCancel(runId, { storeDir: store.dir, reason: `retried as ${retried}` });
  }
  return { runId: retried!, retried: runId, message: `queued ${runId}'s task again as ${retried}` };
}
