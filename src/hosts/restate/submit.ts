import { statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { agentFor, agentSpecOf } from '../../agents/agent-for.js';
import { validateConfig } from '../../config/load.js';
import type { AgentKind, ObraConfig } from '../../config/schema.js';
import { UserError } from '../../core/errors.js';
import type { TaskSpec } from '../../core/types.js';
import { batchIndexOf, cycleOf } from '../../queue/submit.js';
import type { RaceMember } from '../../race/race-submit.js';
import { newRunId, taskInputOf } from '../files/local.js';
import { RestateCallError, RestateClient, urlsText, type RestateUrls } from './client.js';
import { QUEUE_KEY, shardOf, type NewRemoteRun, type RemoteRun, type RemoteWorkspace } from './model.js';

export interface RestateTask {
  task: string;
  /** A folder every worker sees (the same path on each). */
  repo?: string;
  /** A git repository every worker can clone: the task then moves between workers with its branch `obra/<runId>`. */
  repoUrl?: string;
  /** What the task's branch starts from (with repoUrl; default: the remote's HEAD). */
  base?: string;
  /** A run (in Restate) or a task of this batch (`@n`, 1-based) that must be done before this one starts. */
  after?: string;
  checks?: string[];
  priority?: number;
  runId?: string;
  /** The agent CLI that drives this task (default: the config's `agent.kind`). */
  agentKind?: AgentKind;
  /** Set by the expansion of a race (src/race/race-submit.ts): the attempt this task is. */
  race?: RaceMember;
}

/** Queues tasks in Restate (`obra submit` with `engine: restate`); returns their run ids, in order. */
export async function submitToRestate(tasks: RestateTask[], options: RestateUrls & { config?: ObraConfig }): Promise<string[]> {
  const config = validateConfig(options.config ?? {});
  const client = new RestateClient(options);
  const first = Date.now();
  const runIds = tasks.map((t) => t.runId ?? newRunId());
  const prepared = tasks.map((t, i) => {
    if (!t.task.trim()) throw new UserError(`task ${i + 1}: the task is empty — say what the agent should do`);
    if (t.repo && t.repoUrl) throw new UserError(`task ${i + 1}: give either --repo or --repo-url, not both`);
    if (t.base && !t.repoUrl) throw new UserError(`task ${i + 1}: --base needs --repo-url (a repository the workers clone)`);
    const runId = runIds[i]!;
    const inBatch = t.after ? batchIndexOf(t.after) : null;
    if (inBatch !== null && (inBatch < 0 || inBatch >= tasks.length || inBatch === i)) throw new UserError(`task ${i + 1}: after: ${t.after} names no other task of this batch`);
    const after = inBatch !== null ? runIds[inBatch]! : (t.after ?? null);
    const dir = t.repoUrl ? join(expandHome(config.restate.work_dir), runId) : resolve(t.repo ?? process.cwd());
    if (!t.repoUrl && !statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new UserError(`--repo ${dir} is not a folder — pass a folder every worker can reach, or a repository with --repo-url`);
    const spec: TaskSpec = { text: t.task, workdir: dir, checks: [...config.task.checks, ...(t.checks ?? [])], requiredMarkers: config.task.required_markers };
    const taskConfig = t.agentKind && t.agentKind !== config.agent.kind ? { ...config, agent: { ...config.agent, kind: t.agentKind } } : config;
    const input = taskInputOf(runId, spec, taskConfig);
    const at = new Date(first + i).toISOString();
    const workspace: RemoteWorkspace = t.repoUrl ? { kind: 'git', url: t.repoUrl, branch: `obra/${runId}`, base: t.base ?? null } : { kind: 'dir', path: dir };
    const run: NewRemoteRun = {
      runId,
      task: spec,
      config: taskConfig as unknown as Record<string, unknown>,
      input: input as unknown as Record<string, unknown>,
      sessionId: input.sessionId,
      agent: agentSpecOf(agentFor(taskConfig.agent.kind, taskConfig)),
      createdAt: at,
      priority: t.priority ?? 0,
      submittedAt: at,
      workspace,
      after,
      ...(t.race ? { race: t.race } : {}),
    };
    return run;
  });
  // No worker: say so now, rather than leave the tasks in Restate waiting for one while this command gives up.
  await client.checkServing();
  const cycle = cycleOf(tasks.map((t) => (t.after ? batchIndexOf(t.after) : null)));
  if (cycle) throw new UserError(`the tasks follow each other in a circle (${cycle.map((i) => `task ${i + 1}`).join(' → ')}): none of them could ever start`);
  // A run named by --after must be in Restate already (one of this batch is written below; until its line is in
  // the queue, the queue lets its follower wait).
  const shardsFollowed = new Map<string, string>();
  for (const [i, run] of prepared.entries()) {
    if (!run.after) continue;
    const followed = runIds.includes(run.after) ? prepared[runIds.indexOf(run.after)] : await client.task<RemoteRun | null>(run.after, 'get');
    if (!followed) throw new UserError(`--after ${run.after}: there is no such run in Restate at ${urlsText(options.ingressUrl)} (\`obra status --engine restate\` lists them)`);
    if (!runIds.includes(run.after)) shardsFollowed.set(run.after, followed.queueKey ?? QUEUE_KEY);
    // A task that follows another of the same repository, with no base of its own, builds on that one's work:
    // its branch is made (when a worker first starts it, after the other is done) from where the other's ended.
    const space = run.workspace;
    if (space.kind === 'git' && tasks[i]!.base === undefined && followed.workspace.kind === 'git' && followed.workspace.url === space.url) {
      run.workspace = { ...space, base: followed.workspace.branch };
    }
  }
  // A run's line goes to the queue shard of the run it follows (its take checks how that one ended), else to its own.
  const shardAt = (i: number): string => {
    const run = prepared[i]!;
    if (!run.queueKey) run.queueKey = !run.after ? shardOf(run.runId) : runIds.includes(run.after) ? shardAt(runIds.indexOf(run.after)) : shardsFollowed.get(run.after)!;
    return run.queueKey;
  };
  prepared.forEach((_, i) => shardAt(i));
  for (const run of prepared) {
    try {
      await client.task<RemoteRun>(run.runId, 'submit', run);
    } catch (error) {
      if (error instanceof RestateCallError && error.status === 409) throw new UserError(`run ${run.runId} already exists in Restate — pick another --run-id`);
      throw error;
    }
  }
  return runIds;
}

/** `~/x` as the home folder's x. */
export function expandHome(path: string): string {
  return path === '~' || path.startsWith('~/') ? join(homedir(), path.slice(1)) : resolve(path);
}
