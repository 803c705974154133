import { resolve } from 'node:path';
import { resolveRaceWinner } from '../race/race.js';
import { RunStore } from '../store/run-store.js';
import { diffRun, discardRun, mergeRun, retryRun } from '../workbench/actions.js';
import { RESOLUTION_PENDING_EXIT_CODE } from '../core/statuses.js';
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
  const runId = runOrWinner(id, storeDirOf(flags));
  const { diff: text, note } = await diffRun(runId, storeDirOf(flags));
  process.stdout.write(text ? `${text}\n` : '');
  if (note) process.stderr.write(`${note}\n`);
}

export async function merge(id: string, flags: { db?: string; config?: string; resolve?: boolean }): Promise<void> {
  const runId = runOrWinner(id, storeDirOf(flags));
  const config = configFrom(flags);
  const onConflict = flags.resolve === undefined ? config.merge.resolve : flags.resolve ? 'agent' : 'human';
  const outcome = await mergeRun(runId, storeDirOf(flags), { resolve: onConflict });
  process.stdout.write(`${outcome.message}\n`);
  // It has not landed: a task resolves its conflict first.
  if (outcome.resolution) process.exitCode = RESOLUTION_PENDING_EXIT_CODE;
}

export async function discard(runId: string, flags: { db?: string; config?: string }): Promise<void> {
  process.stdout.write(`${(await discardRun(runId, storeDirOf(flags))).message}\n`);
}

export async function retry(runId: string, flags: { db?: string; config?: string; json?: boolean }): Promise<void> {
  const outcome = await retryRun(runId, storeDirOf(flags));
  process.stdout.write(flags.json ? `${JSON.stringify({ runId: outcome.runId, retried: outcome.retried })}\n` : `${outcome.runId}\n`);
  if (!flags.json) process.stderr.write(`${outcome.message}; \`obra work\` drives it\n`);
}
