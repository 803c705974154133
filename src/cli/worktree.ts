import { resolve } from 'node:path';
import { resolveRaceWinner } from '../race/race.js';
import { RunStore } from '../store/run-store.js';
import { diffRun, discardRun, landRuns, mergeRun, retryRun } from '../workbench/actions.js';
import { RESOLUTION_PENDING_EXIT_CODE } from '../core/statuses.js';
import { UserError } from '../core/errors.js';
import type { MergeStrategy } from '../workspace/conflict.js';
import { configFrom } from './config-from.js';

/** `obra diff`, `obra merge`, `obra discard`, `obra retry`: a queued task from the command line (src/workbench/actions.ts does the work). */

const storeDirOf = (flags: { db?: string; config?: string }) => resolve(flags.db ?? configFrom(flags).store.dir);

/** A race's id stands for its winner's run (src/race/race.ts); a run id for itself. */
function runOrWinner(id: string, storeDir: string): string {
  const winner = resolveRaceWinner(RunStore.open(storeDir, { create: false }), id);
  if (winner !== id) process.stderr.write(`race ${id}: its winner is ${winner}\n`);
  return winner;
}

export async function diff(id: string, flags: { db?: string; config?: string }): Promise<void> {
  const storeDir = storeDirOf(flags);
  const runId = runOrWinner(id, storeDir);
  const { diff: text, note } = await diffRun(runId, storeDir);
  process.stdout.write(text ? `${text}\n` : '');
  if (note) process.stderr.write(`${note}\n`);
}

export interface MergeFlags {
  db?: string;
  config?: string;
  all?: boolean;
  strategy?: MergeStrategy;
  /** One task: on a conflict, hand it to an agent (true) or to you (false); default `merge.resolve`. */
  resolve?: boolean;
  json?: boolean;
  set?: string[];
}

/**
 * `obra merge <runId>` merges one task in the user's checkout (a race's id: its winner); `obra merge A B C`,
 * `--all` or `--strategy` run the merge queue (src/queue/merge-queue.ts), a progress line per landing.
 */
export async function merge(ids: string[], flags: MergeFlags): Promise<void> {
  if (flags.all && ids.length) throw new UserError('give either run ids or --all, not both');
  if (!flags.all && !ids.length) throw new UserError('name the tasks to merge (`obra merge <runId>...`), or land every done task with `obra merge --all`');
  const config = configFrom(flags, flags.strategy ? { 'merge.strategy': flags.strategy } : {});
  const storeDir = resolve(flags.db ?? config.store.dir);
  const runIds = ids.map((id) => runOrWinner(id, storeDir));
  if (runIds.length === 1 && !flags.strategy) {
    const onConflict = flags.resolve === undefined ? config.merge.resolve : flags.resolve ? 'agent' : 'human';
    const outcome = await mergeRun(runIds[0]!, storeDir, { resolve: onConflict });
    process.stdout.write(flags.json ? `${JSON.stringify(outcome)}\n` : `${outcome.message}\n`);
    // It has not landed: a task resolves its conflict first.
    if (outcome.resolution) process.exitCode = RESOLUTION_PENDING_EXIT_CODE;
    return;
  }
  if (flags.resolve) throw new UserError('--resolve hands one task\'s conflict to an agent: merge that task alone (`obra merge --resolve <runId>`)');
  const result = await landRuns(flags.all ? 'all' : runIds, {
    storeDir,
    config,
    progress: flags.json ? undefined : (line) => process.stdout.write(`${line}\n`),
  });
  if (flags.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else if (!result.landed.length) process.stdout.write('nothing to land: no done task has a branch that is neither merged nor discarded\n');
  else {
    const made = result.landed.filter((l) => l.outcome === 'landed').length;
    process.stdout.write(`landed ${made} task${made === 1 ? '' : 's'}${made < result.landed.length ? ` (${result.landed.length - made} on the base already)` : ''}; every landing's checks passed\n`);
  }
}

export async function discard(runId: string, flags: { db?: string; config?: string }): Promise<void> {
  process.stdout.write(`${(await discardRun(runId, storeDirOf(flags))).message}\n`);
}

export async function retry(runId: string, flags: { db?: string; config?: string; json?: boolean }): Promise<void> {
  const outcome = await retryRun(runId, storeDirOf(flags));
  process.stdout.write(flags.json ? `${JSON.stringify({ runId: outcome.runId, retried: outcome.retried })}\n` : `${outcome.runId}\n`);
  if (!flags.json) process.stderr.write(`${outcome.message}; \`obra work\` drives it\n`);
}
