import { resolve } from 'node:path';
import { diffRun, discardRun, mergeRun, retryRun } from '../workbench/actions.js';
import { RESOLUTION_PENDING_EXIT_CODE } from '../core/statuses.js';
import { configFrom } from './config-from.js';

/** `obra diff`, `obra merge`, `obra discard`, `obra retry`: a queued task from the command line (src/workbench/actions.ts does the work). */

const storeDirOf = (flags: { db?: string; config?: string }) => resolve(flags.db ?? configFrom(flags).store.dir);

export async function diff(runId: string, flags: { db?: string; config?: string }): Promise<void> {
  const { diff: text, note } = await diffRun(runId, storeDirOf(flags));
  process.stdout.write(text ? `${text}\n` : '');
  if (note) process.stderr.write(`${note}\n`);
}

export async function merge(runId: string, flags: { db?: string; config?: string; resolve?: boolean }): Promise<void> {
  const config = configFrom(flags);
  const resolve = flags.resolve === undefined ? config.merge.resolve : flags.resolve ? 'agent' : 'human';
  const outcome = await mergeRun(runId, storeDirOf(flags), { resolve });
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
