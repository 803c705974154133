import { rmSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Agent } from '../agents/agent.js';
import { agentFor, agentSpecOf } from '../agents/agent-for.js';
import { costBudgetProblem } from '../agents/budget-check.js';
import { validateConfig } from '../config/load.js';
import type { AgentKind, ObraConfig } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import { isFinalStatus } from '../core/statuses.js';
import type { TaskSpec } from '../core/types.js';
import { newRunId, taskInputOf } from '../hosts/files/local.js';
import type { QueueEntry, Workspace } from '../persisted/run-file.js';
import type { StoreFs } from '../store/durable-file.js';
import { RunStore } from '../store/run-store.js';
import { expandRaces, type RaceMember } from '../race/race-submit.js';
import { repositoryOf } from '../workspace/git.js';
import { discardWorktree, prepareWorktree, type WorktreeSpace } from '../workspace/worktree.js';

/**
 * The durable queue: `obra submit` (and `submitTask`) put a task in the store as a run `queued` — its input,
 * its config, where it will work, its priority and the run it follows — and `obra work` drives the queue. A
 * task in a git repository gets its own branch `obra/<runId>` now (and its worktree when it starts); a task in
 * a plain folder works there, and no other active task may use that folder.
 */

export interface SubmitOptions {
  task: string;
  /** Added to `config.task.checks`. */
  checks?: string[];
  /** The folder the task works on (default: the current directory). Inside a git repository: a worktree of its own. */
  repo?: string;
  /** What the task's branch starts from (default: the repository's HEAD). Only for a git repository. */
  base?: string;
  /** Higher first; ties by age (default 0). */
  priority?: number;
  /** A run this task follows: it starts once that one is `done` (and is blocked if that one fails). */
  after?: string;
  runId?: string;
  /** The agent CLI that drives this task (`--agent`; default: the config's `agent.kind`). */
  agentKind?: AgentKind;
  /** A race: one attempt per agent (`--agents`; see src/race/race-submit.ts). */
  agents?: AgentKind[];
  /** A race: attempts per agent (`--attempts`; default 1). */
  attempts?: number;
  /** Set by the expansion of a race: the attempt this task is. */
  race?: RaceMember;
  /** A task that resolves another's merge conflict (src/queue/resolve.ts): it gets Obra's conflict gate. */
  resolves?: NonNullable<QueueEntry['resolves']>;
  config?: ObraConfig;
  storeDir?: string;
  /** The agent's name is recorded (a worker must be given an in-process agent by its script). */
  agent?: Agent;
  fs?: StoreFs;
}

/** A task of a batch: `submitTask`'s options, and where a tasks file wrote its `after` (`/p/tasks.yaml:7: task 2`). */
export type BatchTask = Omit<SubmitOptions, 'config' | 'storeDir' | 'agent' | 'fs'> & { afterAt?: string };

/** Queues one task; resolves with its run id (a race's: its first attempt's). Nothing is written when the input is bad. */
export async function submitTask(options: SubmitOptions): Promise<{ runId: string }> {
  const [runId] = await submitTasks([options], options);
  return { runId: runId! };
}

/** `submitTasks`, also saying which races it queued (a race's id, and its attempts' run ids). */
export async function submitBatch(tasks: BatchTask[], shared: Pick<SubmitOptions, 'config' | 'storeDir' | 'agent' | 'fs'> = {}): Promise<{ runIds: string[]; races: { raceId: string; runIds: string[] }[] }> {
  const expanded = expandRaces(tasks, newRunId);
  return { runIds: await submitExpanded(expanded.tasks, shared), races: expanded.races };
}

/**
 * Queues several tasks, all or none: every one is checked before any is written. `after` may name a run of the
 * store, or (as `@<n>`) the n-th task of this same batch (1-based) — how a tasks file chains its own tasks.
 */
export async function submitTasks(tasks: BatchTask[], shared: Pick<SubmitOptions, 'config' | 'storeDir' | 'agent' | 'fs'> = {}): Promise<string[]> {
  return (await submitBatch(tasks, shared)).runIds;
}

async function submitExpanded(tasks: BatchTask[], shared: Pick<SubmitOptions, 'config' | 'storeDir' | 'agent' | 'fs'>): Promise<string[]> {
  const config = validateConfig(shared.config ?? {});
  const store = RunStore.open(shared.storeDir ?? config.store.dir, { fs: shared.fs });
  const known = new Set(store.listRunIds());
  // Generated ids carry the second and 24 random bits: in a batch of thousands, draw again on a collision.
  const taken = new Set([...known, ...tasks.flatMap((t) => (t.runId ? [t.runId] : []))]);
  const runIds = tasks.map((t) => {
    if (t.runId) return t.runId;
    let id = newRunId();
    while (taken.has(id)) id = newRunId();
    taken.add(id);
    return id;
  });

  // Everything that can be refused, before anything is written.
  for (const [i, t] of tasks.entries()) {
    const where = tasks.length > 1 ? `task ${i + 1}: ` : '';
    if (!t.task.trim()) throw new UserError(`${where}the task is empty — say what the agent should do`);
    if (t.priority !== undefined && !Number.isInteger(t.priority)) throw new UserError(`${where}--priority must be a whole number, got ${t.priority}`);
    const budget = shared.agent ? null : costBudgetProblem(config, t.agentKind ?? config.agent.kind);
    if (budget) throw new UserError(`${where}${budget}`);
    if (known.has(runIds[i]!)) throw new UserError(`${where}run ${runIds[i]} already exists in ${store.dir}`);
    const twin = runIds.indexOf(runIds[i]!);
    if (twin < i) throw new UserError(`${where}the run id ${runIds[i]} is given to task ${twin + 1} too`);
    if (t.after !== undefined) {
      const inBatch = batchIndexOf(t.after);
      if (inBatch !== null && (inBatch < 0 || inBatch >= tasks.length || inBatch === i)) throw new UserError(`${where}after: ${t.after} names no other task of this batch`);
      if (inBatch === null && !known.has(t.after)) {
        throw new UserError(
          t.afterAt
            ? `${t.afterAt}: after: "${t.after}" names no task in this file and no run in the store ${store.dir} (\`obra runs\` lists them)`
            : `${where}--after ${t.after}: there is no such run in ${store.dir} (\`obra runs\` lists them)`,
        );
      }
    }
  }
  const cycle = cycleOf(tasks.map((t) => (t.after === undefined ? null : batchIndexOf(t.after))));
  if (cycle) throw new UserError(`the tasks follow each other in a circle (${cycle.map((i) => `task ${i + 1}`).join(' → ')}): none of them could ever start`);

  // Where each works: a plain folder must not be shared with an active task (of the store, or of this batch).
  const places = await mapInChunks(tasks, 16, async (t) => {
    const dir = resolve(t.repo ?? process.cwd());
    try {
      if (!statSync(dir).isDirectory()) throw new Error('not a folder');
    } catch {
      throw new UserError(`--repo ${dir} is not a folder — pass an existing folder (a git repository gets a worktree per task)`);
    }
    const repo = await repositoryOf(dir);
    if (!repo && t.race) throw new UserError(`a race needs a git repository: each attempt works in a worktree and on a branch of its own, and ${dir} is not in one`);
    if (!repo && t.base !== undefined) throw new UserError(`--base ${t.base} needs a git repository, and ${dir} is not in one`);
    return { dir, repo };
  });
  // Read from every run of the store: only when a task works in a plain folder (a repository's get worktrees).
  const busy = places.some((p) => !p.repo) ? activeFolders(store) : new Map<string, string>();
  for (const [i, place] of places.entries()) {
    if (place.repo) continue;
    const other = busy.get(place.dir) ?? places.findIndex((p, j) => j < i && !p.repo && p.dir === place.dir);
    if (typeof other === 'string') throw new UserError(`${place.dir} is the working folder of run ${other}, which is still active — two tasks never share a folder: use a git repository (a worktree each) or another folder`);
    if (other >= 0) throw new UserError(`tasks ${other + 1} and ${i + 1} would share the folder ${place.dir} — two tasks never share a folder: use a git repository (a worktree each)`);
  }

  // Now write: branches first (a refused branch leaves no run behind), then the runs.
  const made: WorktreeSpace[] = [];
  const written: string[] = [];
  try {
    const spaces: Workspace[] = [];
    for (const [i, t] of tasks.entries()) {
      const place = places[i]!;
      if (!place.repo) {
        spaces.push({ kind: 'dir', path: place.dir });
        continue;
      }
      const space = await prepareWorktree({ repoDir: place.repo, base: t.base, runId: runIds[i]!, storeDir: store.dir, topLevel: true });
      made.push(space);
      spaces.push(space);
    }
    // A task that follows another in the same repository, with no base of its own, builds on that one's work: it
    // starts from that one's branch when a worker starts it (see startFromFollowed).
    for (const [i, t] of tasks.entries()) {
      const space = spaces[i]!;
      if (t.after === undefined || t.base !== undefined || space.kind !== 'worktree') continue;
      const inBatch = batchIndexOf(t.after);
      const followed = inBatch === null ? store.peekStatus(t.after).file.queue?.workspace : spaces[inBatch];
      if (followed?.kind === 'worktree' && followed.repo === space.repo) space.follows = followed.branch;
    }
    // Each task's agent CLI is its own (`agent:` in a tasks file), recorded with its config so a worker builds it.
    const configs = tasks.map((t) => (t.agentKind && t.agentKind !== config.agent.kind ? { ...config, agent: { ...config.agent, kind: t.agentKind } } : config));
    const specs = configs.map((c) => agentSpecOf(shared.agent ?? agentFor(c.agent.kind, c)));
    // Age orders the queue: a batch's tasks get increasing times (a millisecond apart at least), in file order.
    const first = Date.now();
    // Many runs written at a time, each waiting for the disk off the event loop (a batch of a thousand is a
    // thousand folders and durable files).
    await mapInChunks([...tasks.entries()], 16, async ([i, t]) => {
      const space = spaces[i]!;
      const taskSpec: TaskSpec = { text: t.task, workdir: space.path, checks: [...config.task.checks, ...(t.checks ?? [])], requiredMarkers: config.task.required_markers };
      // A resolution may be done only once no conflict marker is left in what the merge touches since its base.
      if (t.resolves && space.kind === 'worktree') taskSpec.conflictGate = { since: space.baseCommit, files: t.resolves.files, tip: t.resolves.tip };
      const input = taskInputOf(runIds[i]!, taskSpec, configs[i]!);
      const inBatch = t.after === undefined ? null : batchIndexOf(t.after);
      const now = new Date(Math.max(Date.now(), first + i));
      await store.createRunInBackground({
          runId: runIds[i]!,
          task: taskSpec,
          createdAt: now.toISOString(),
          sessionId: input.sessionId,
          config: configs[i] as unknown as Record<string, unknown>,
          input: input as unknown as Record<string, unknown>,
          agent: specs[i]!,
          status: 'queued',
          queue: { priority: t.priority ?? 0, after: inBatch === null ? (t.after ?? null) : runIds[inBatch]!, submittedAt: now.toISOString(), workspace: space, ...(t.race ? { race: t.race } : {}), ...(t.resolves ? { resolves: t.resolves } : {}) },
      });
      written.push(runIds[i]!);
    });
  } catch (error) {
    // All or none: what this batch wrote goes again — its runs, then its branches.
    for (const runId of written) rmSync(store.runDir(runId), { recursive: true, force: true });
    for (const space of made) await discardWorktree(space).catch(() => {});
    throw error;
  }
  return runIds;
}

/** The task of the same batch an `after` names (`@n`, 1-based), as an index; null for a run id. */
export function batchIndexOf(after: string): number | null {
  return /^@\d+$/.test(after) ? Number(after.slice(1)) - 1 : null;
}

/** The first circle among "task i follows task after[i]" links, as task indexes, or null. */
export function cycleOf(after: (number | null)[]): number[] | null {
  for (let start = 0; start < after.length; start++) {
    const seen: number[] = [];
    for (let i: number | null = start; i !== null; i = after[i] ?? null) {
      const at = seen.indexOf(i);
      if (at >= 0) return [...seen.slice(at), i];
      seen.push(i);
    }
  }
  return null;
}

/** The plain folders active runs of the store work in (git worktree tasks have their own). */
function activeFolders(store: RunStore): Map<string, string> {
  const busy = new Map<string, string>();
  for (const runId of store.listRunIds()) {
    try {
      const { file, status } = store.peekStatus(runId);
      if (isFinalStatus(status) || file.queue?.workspace.kind === 'worktree') continue;
      busy.set(resolve(file.task.workdir), runId);
    } catch {
      // An unreadable run is listed by `obra runs`; it cannot hold a folder here.
    }
  }
  return busy;
}

/**
 * `fn` over `items`, `size` at a time (a batch of thousands must not start thousands of gits). A failure is
 * thrown once the rest of its chunk has ended: nothing is still being written when the caller cleans up.
 */
async function mapInChunks<T, R>(items: T[], size: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) {
    const settled = await Promise.allSettled(items.slice(i, i + size).map(fn));
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    out.push(...settled.map((s) => (s as PromiseFulfilledResult<R>).value));
  }
  return out;
}
