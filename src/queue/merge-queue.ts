import { readFileSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, join } from 'node:path';
import { z } from 'zod';
import { UserError } from '../core/errors.js';
import { queueOrder } from '../core/status-line.js';
import { LANDING_RED_EXIT_CODE } from '../core/statuses.js';
import { readRaceDecision } from '../race/race.js';
import type { CheckResult } from '../core/types.js';
import type { QueueEntry } from '../persisted/run-file.js';
import { runChecks } from '../scoring/checks.js';
import { writeFileDurably } from '../store/durable-file.js';
import { refreshOpenOverlaps } from './overlap.js';
import { recordMerged } from './record-merged.js';
import { lockIsLive, thisProcessLock, type RunStore } from '../store/run-store.js';
import { MERGE_STRATEGIES, MergeConflictError, type MergeConflict, type MergeStrategy } from '../workspace/conflict.js';
import { checkoutOf, landedAs, moveBase, prepareLanding, removeScratch, reuseScratch, tipOf, type LandingTask } from '../workspace/landing.js';
import { dirtyPaths, fewPaths, type WorktreeSpace } from '../workspace/worktree.js';

/**
 * The merge queue (`obra merge --all`, `obra merge A B C`): done tasks land on their base branch one after
 * another — the ones a task follows first, then by priority and age — each on the base as the previous one left
 * it. Each landing is made in a scratch worktree, where the checks of every task landed so far run; the base
 * moves only when they pass. A failing check or a conflict stops the queue with the base at its last green
 * landing. `<store>/merge-queue.json` holds the plan while it runs: a queue cut short (killed) is taken up again
 * by the next `obra merge --all`, and a landing made before the cut is found by its trailer, not made twice.
 */

const queueFileSchema = z.object({
  version: z.literal(1),
  startedAt: z.string(),
  strategy: z.enum(MERGE_STRATEGIES),
  /** The tasks to land, in order. */
  runIds: z.array(z.string()),
  /** The process running it. */
  holder: z.object({ pid: z.number(), start: z.string().nullable(), host: z.string(), since: z.string() }),
});
type QueueFile = z.infer<typeof queueFileSchema>;

export interface MergeQueueOptions {
  store: RunStore;
  /** The tasks to land; `all`: every done task whose branch is neither merged nor discarded. */
  runIds: string[] | 'all';
  strategy: MergeStrategy;
  checkTimeoutMs: number;
  /** One line per landing, as it happens. */
  progress?: (line: string) => void;
  signal?: AbortSignal;
}

export interface LandingResult {
  runId: string;
  outcome: 'landed' | 'already' | 'empty';
  commit: string;
  into: string;
  checks: CheckResult[];
}

export interface MergeQueueResult {
  landed: LandingResult[];
  /** Set when the queue took up one that was cut short. */
  resumedFrom: string | null;
}

interface Planned {
  runId: string;
  space: WorktreeSpace & { baseBranch: string };
  queue: QueueEntry;
  task: string;
  checks: string[];
}

export const queueFileOf = (store: RunStore) => join(store.dir, 'merge-queue.json');

/** The scratch worktree the queue lands in, one per repository: `<store>/landing/<repo's name>-<hash of its path>`. */
const scratchOf = (store: RunStore, repo: string) => join(store.dir, 'landing', `${basename(repo)}-${createHash('sha256').update(repo).digest('hex').slice(0, 8)}`);

/** Lands the tasks; a conflict throws a `MergeConflictError` (exit 11), a red landing a `UserError` with exit 13. */
export async function runMergeQueue(options: MergeQueueOptions): Promise<MergeQueueResult> {
  const { store } = options;
  const path = queueFileOf(store);
  const pending = readQueueFile(path);
  if (pending && lockIsLive(pending.holder) && pending.holder.pid !== process.pid) {
    throw new UserError(`another merge queue is running on this store (process ${pending.holder.pid}, since ${pending.holder.since}) — wait for it to end`, 3);
  }
  // What a queue cut short had left to land; when nothing is, it is over, and this run plans afresh.
  const left = pending ? pending.runIds.map((runId) => plannedOrNull(store, runId)).filter((p): p is Planned => p !== null) : [];
  if (pending && !left.length) rmSync(path, { force: true });
  const resuming = pending !== null && left.length > 0;
  const resumedFrom = resuming ? pending.startedAt : null;
  const strategy = resuming ? pending.strategy : options.strategy;
  const plan = orderOf(resuming ? left : select(store, options.runIds));
  if (!plan.length) return { landed: [], resumedFrom };
  await refuseDirtyCheckouts(plan);
  writeFileDurably(path, JSON.stringify({ version: 1, startedAt: pending?.startedAt ?? new Date().toISOString(), strategy, runIds: plan.map((p) => p.runId), holder: thisProcessLock() } satisfies QueueFile));
  if (pending) options.progress?.(`taking up the merge queue started at ${pending.startedAt} (${pending.strategy}): ${plan.length} task${plan.length === 1 ? '' : 's'}`);

  const landed: LandingResult[] = [];
  // The checks of every task landed on a base so far run on each later landing there: the base stays green for them all.
  const checksOn = new Map<string, string[]>();
  try {
    for (const [i, item] of plan.entries()) {
      if (options.signal?.aborted) break;
      const at = `[${i + 1}/${plan.length}] ${item.runId}`;
      const target = `${item.space.repo}\0${item.space.baseBranch}`;
      const checks = [...new Set([...(checksOn.get(target) ?? []), ...item.checks])];
      checksOn.set(target, checks);
      const task: LandingTask = { repo: item.space.repo, runId: item.runId, branch: item.space.branch, into: item.space.baseBranch, task: item.task };
      const { tip, landed: already } = await landedAs(task);
      if (already) {
        record(store, item, already);
        landed.push({ runId: item.runId, outcome: 'already', commit: already, into: task.into, checks: [] });
        options.progress?.(`${at}: on ${task.into} already (${already.slice(0, 12)})`);
        continue;
      }
      const baseTip = await tipOf(task.repo, task.into);
      if (!baseTip) throw new UserError(`the base branch ${task.into} is gone from ${task.repo} — nothing more was landed`);
      const dir = scratchOf(store, item.space.repo);
      const landing = await prepareLanding(task, { tip, baseTip, strategy, dir });
      if (landing.kind === 'conflict') {
        rmSync(path, { force: true });
        options.progress?.(`${at}: conflicts with ${task.into} in ${landing.conflict.files.join(', ')} — stopped`);
        throw conflictError(landing.conflict, landed.length);
      }
      if (landing.kind === 'empty') {
        reuseScratch(landing.dir);
        record(store, item, baseTip);
        landed.push({ runId: item.runId, outcome: 'empty', commit: baseTip, into: task.into, checks: [] });
        options.progress?.(`${at}: nothing left to land on ${task.into} (its changes are there already)`);
        continue;
      }
      const results = await runChecks(checks, { cwd: landing.dir, timeoutMs: options.checkTimeoutMs, signal: options.signal });
      const failed = results.find((r) => r.exitCode !== 0);
      if (failed || results.length < checks.length) {
        await removeScratch(task.repo, landing.dir);
        rmSync(path, { force: true });
        const what = failed ? `the check \`${failed.command}\` failed (${failed.exitCode === null ? 'timed out' : `exit ${failed.exitCode}`})` : 'the checks were stopped';
        options.progress?.(`${at}: ${what} on the landing — stopped`);
        throw new UserError(
          `${item.runId} (${item.space.branch}) was not landed: ${what} on ${task.into} with it; ${task.into} stays at ${baseTip.slice(0, 12)}${landed.length ? `, the last green landing` : ''} — fix the task and run the queue again`,
          LANDING_RED_EXIT_CODE,
        );
      }
      await moveBase(task.repo, task.into, baseTip, landing.commit);
      record(store, item, landing.commit);
      reuseScratch(landing.dir);
      landed.push({ runId: item.runId, outcome: 'landed', commit: landing.commit, into: task.into, checks: results });
      const took = results.reduce((sum, r) => sum + r.durationMs, 0);
      options.progress?.(`${at}: landed ${item.space.branch} on ${task.into} (${strategy}) as ${landing.commit.slice(0, 12)}; ${results.length ? `${results.length} check${results.length === 1 ? '' : 's'} passed in ${(took / 1000).toFixed(1)} s` : 'no checks'}`);
    }
  } finally {
    // The base moved: the tasks still open on it are told where they stand now (a landing may have made one conflict).
    if (landed.some((l) => l.outcome === 'landed')) await refreshOpenTasks(store, new Set(plan.map((p) => p.space.repo)));
  }
  // One scratch worktree per repository served the whole queue.
  for (const repo of new Set(plan.map((p) => p.space.repo))) await removeScratch(repo, scratchOf(store, repo));
  if (!options.signal?.aborted) rmSync(path, { force: true });
  return { landed, resumedFrom };
}

/** Works out again the overlap of every task of the store with an open branch in these repositories. */
async function refreshOpenTasks(store: RunStore, repos: Set<string>): Promise<void> {
  for (const repo of repos) await refreshOpenOverlaps(store, repo);
}

function conflictError(conflict: MergeConflict, landedBefore: number): MergeConflictError {
  return new MergeConflictError(
    `${conflict.runId} (${conflict.branch}) conflicts with ${conflict.into} in ${conflict.files.join(', ')} (${conflict.strategy}) — the queue stopped there, ${landedBefore ? `after ${landedBefore} landing${landedBefore === 1 ? '' : 's'}, ` : ''}with ${conflict.into} at ${conflict.baseCommit.slice(0, 12)}; resolve it (\`git -C ${conflict.repo} merge ${conflict.branch}\`) or discard the task, then run the queue again`,
    conflict,
  );
}

/** The tasks named (each must be a done worktree task), or every done task with an open branch. */
function select(store: RunStore, runIds: string[] | 'all'): Planned[] {
  if (runIds !== 'all') {
    const named = runIds.map((runId) => planned(store, runId, false)!);
    return named.filter((p, i) => named.findIndex((q) => q.runId === p.runId) === i);
  }
  const out: Planned[] = [];
  for (const runId of store.listRunIds()) {
    try {
      const p = planned(store, runId, true);
      if (p) out.push(p);
    } catch {
      // Unreadable: `obra runs` names it; it is no one's to land.
    }
  }
  return out;
}

/** A task of a queue cut short that is still to land, or null (landed and recorded since, discarded, gone). */
function plannedOrNull(store: RunStore, runId: string): Planned | null {
  try {
    return planned(store, runId, true);
  } catch {
    return null;
  }
}

/** A task ready to land, or (quiet) null when it is not one; else a one-line refusal. */
function planned(store: RunStore, runId: string, quiet: boolean): Planned | null {
  const { file, status } = store.peekStatus(runId);
  const space = file.queue?.workspace;
  const refuse = (why: string) => {
    if (quiet) return null;
    throw new UserError(`run ${runId} ${why}; nothing was merged`);
  };
  if (space?.kind !== 'worktree') return refuse('has no worktree of its own to land');
  if (file.queue!.discarded) return refuse("had its worktree and branch discarded");
  if (status !== 'done') return refuse(`is ${status}: only a done task lands`);
  if (!space.baseBranch) return refuse(`started from ${space.base}, not from a branch: merge ${space.branch} yourself`);
  if (quiet && file.queue!.merged) return null;
  // `--all` lands a race's winner only, and a conflict's resolution with the task it resolves (`obra merge <task>`).
  if (quiet && file.queue!.race && readRaceDecision(store, file.queue!.race.id)?.winner !== runId) return null;
  if (quiet && file.queue!.resolves) return null;
  return { runId, space: space as Planned['space'], queue: file.queue!, task: file.task.text, checks: file.task.checks };
}

/** The ones a task follows first, then by priority, then the oldest (the queue's own order). */
export function orderOf<T extends { runId: string; queue: Pick<QueueEntry, 'after' | 'priority' | 'submittedAt'> }>(items: T[]): T[] {
  const left = new Map(items.map((item) => [item.runId, item]));
  const out: T[] = [];
  while (left.size) {
    const ready = [...left.values()].filter((item) => !item.queue.after || !left.has(item.queue.after));
    // A circle cannot be submitted; were one there, the rest goes in queue order.
    const pool = ready.length ? ready : [...left.values()];
    pool.sort((a, b) => queueOrder({ priority: a.queue.priority, since: a.queue.submittedAt, runId: a.runId }, { priority: b.queue.priority, since: b.queue.submittedAt, runId: b.runId }));
    out.push(pool[0]!);
    left.delete(pool[0]!.runId);
  }
  return out;
}

/** A checkout that has a base branch checked out must be clean: the queue moves it along. */
async function refuseDirtyCheckouts(plan: Planned[]): Promise<void> {
  const seen = new Set<string>();
  for (const item of plan) {
    const key = `${item.space.repo}\0${item.space.baseBranch}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const checkout = await checkoutOf(item.space.repo, item.space.baseBranch);
    if (!checkout) continue;
    const dirty = await dirtyPaths(checkout);
    if (dirty.length) throw new UserError(`${checkout} has ${item.space.baseBranch} checked out with uncommitted changes (${fewPaths(dirty)}) — commit or stash them first; nothing was merged`);
  }
}

/** The landing, in the task's record: `obra status` shows it merged, and the overlap warnings leave it out. */
function record(store: RunStore, item: Planned, commit: string): void {
  if (item.queue.merged?.commit !== commit) recordMerged(store, item.runId, commit);
}

function readQueueFile(path: string): QueueFile | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return null;
  }
  try {
    const parsed = queueFileSchema.safeParse(JSON.parse(text));
    if (parsed.success) return parsed.data;
  } catch {
    // Unreadable: written half by a crash of an older Obra? Say so below.
  }
  throw new UserError(`${path} cannot be read — remove it (the landings made are in git already) and run the queue again`);
}
