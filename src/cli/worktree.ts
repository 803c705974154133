import { resolve } from 'node:path';
import { UserError } from '../core/errors.js';
import type { QueueEntry } from '../persisted/run-file.js';
import { RunStore } from '../store/run-store.js';
import { diffOf, discardWorktree, mergeInto, type WorktreeSpace } from '../workspace/worktree.js';
import { configFrom } from './config-from.js';

/** `obra diff`, `obra merge`, `obra discard`: a queued task's worktree and branch, from the command line. */

function taskSpace(runId: string, flags: { db?: string; config?: string }) {
  const store = RunStore.open(resolve(flags.db ?? configFrom(flags).store.dir), { create: false });
  const handle = store.openRun(runId);
  const file = handle.file;
  const status = handle.effectiveStatus();
  handle.close();
  const space = file.queue?.workspace;
  if (space?.kind !== 'worktree') throw new UserError(`run ${runId} has no worktree of its own (it ${file.queue ? `works in the folder ${file.task.workdir}` : 'was started with `obra run`'}) — see its changes there`);
  if (file.queue?.discarded) throw new UserError(`run ${runId}'s worktree and branch were discarded`);
  return { store, space: space as WorktreeSpace, status, queue: file.queue as QueueEntry };
}

export async function diff(runId: string, flags: { db?: string; config?: string }): Promise<void> {
  const { space } = taskSpace(runId, flags);
  const text = await diffOf(space);
  process.stdout.write(text ? `${text}\n` : '');
  if (!text) process.stderr.write(`run ${runId} has committed no change yet (${space.branch} is at ${space.base})\n`);
}

export async function merge(runId: string, flags: { db?: string; config?: string }): Promise<void> {
  const { store, space, status, queue } = taskSpace(runId, flags);
  if (status === 'running' || status === 'queued') throw new UserError(`run ${runId} is ${status}: merge it once it has ended (or pause it first); nothing was changed`);
  const { commit, already } = await mergeInto(space, runId);
  if (queue.merged?.commit !== commit) {
    const handle = store.openRun(runId);
    try {
      handle.update({ queue: { ...queue, merged: { commit, at: new Date().toISOString() } } });
    } finally {
      handle.close();
    }
  }
  process.stdout.write(
    already
      ? `${space.branch} was merged into ${space.baseBranch} in ${space.repo} already (${commit.slice(0, 12)}); nothing was changed\n`
      : `merged ${space.branch} into ${space.baseBranch} in ${space.repo} (${commit.slice(0, 12)})\n`,
  );
}

export async function discard(runId: string, flags: { db?: string; config?: string }): Promise<void> {
  const { store, space, status, queue } = taskSpace(runId, flags);
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
  process.stdout.write(`removed the worktree ${space.path} and the branch ${space.branch}\n`);
}
