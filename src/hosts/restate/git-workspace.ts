import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { IterationRecord } from '../../core/types.js';
import { git, tryGit } from '../../workspace/git.js';
import { commitIteration, inTurn } from '../../workspace/worktree.js';

/**
 * A task that moves between workers works, on whichever worker holds it, in a git worktree at
 * `<work dir>/<runId>` on the branch `obra/<runId>`. The worktrees of one repository share a bare copy of it,
 * `<work dir>/.repos/<hash of the URL>.git` (its objects fetched once for all its tasks). The branch on the
 * remote is the task's state of work: a worker that takes the task fetches and checks the branch out as the
 * remote has it — every earlier iteration's commit, whoever made it. After every iteration the worker commits
 * and pushes before the iteration is recorded, so a recorded iteration's work is always on the remote (a
 * worker killed in between has its commit found there by the next one).
 */
export interface MovingCheckout {
  url: string;
  branch: string;
  base: string | null;
  /** Where this worker keeps the task's worktree. */
  path: string;
}

/** The bare copy of the repository the task's worktree belongs to, on this worker. */
function mirrorOf(space: MovingCheckout): string {
  return join(dirname(space.path), '.repos', `${createHash('sha256').update(space.url).digest('hex').slice(0, 16)}.git`);
}

/**
 * Fetches (cloning the first time), then checks out the task's branch as the remote has it (made from `base` the
 * first time). `answeredIteration`: the journal holds the answer of that iteration's call but not its commit
 * (a worker died in between): the call's work, saved beside the branch before its answer was sent
 * (`saveWorkInProgress`), is put back in the worktree, uncommitted, as the agent left it.
 */
export async function prepareCheckout(space: MovingCheckout, answeredIteration: { runId: string; index: number } | null = null): Promise<void> {
  const { url, branch, path } = space;
  const mirror = mirrorOf(space);
  // The tasks of one repository on this worker take turns: git locks its refs and its list of worktrees.
  await inTurn(mirror, async () => {
    if (!existsSync(join(mirror, 'HEAD'))) {
      mkdirSync(dirname(mirror), { recursive: true });
      await git(dirname(mirror), ['clone', '--quiet', '--bare', url, mirror], `clone ${url}`);
      // The remote's branches as remote-tracking refs: a fetch never moves a branch a worktree has checked out.
      await git(mirror, ['config', 'remote.origin.fetch', '+refs/heads/*:refs/remotes/origin/*'], 'set up the copy of the repository');
    }
    await git(mirror, ['fetch', '--quiet', '--prune', 'origin'], `fetch ${url}`);
    const remote = (await tryGit(mirror, ['rev-parse', '--verify', '--quiet', `refs/remotes/origin/${branch}`])).exitCode === 0;
    const start = remote ? `refs/remotes/origin/${branch}` : await startOf(mirror, space.base);
    if (existsSync(join(path, '.git'))) {
      // What the remote holds wins: anything this worktree had beyond it was never recorded as an iteration.
      await git(path, ['checkout', '--quiet', '--force', '-B', branch, start], `check out ${branch}`);
      await git(path, ['clean', '-fdq'], `clean the worktree of ${branch}`);
    } else {
      await git(mirror, ['worktree', 'prune'], 'tidy the list of worktrees');
      rmSync(path, { recursive: true, force: true }); // a folder left by a crash while it was made
      await git(mirror, ['worktree', 'add', '--quiet', '--force', '-B', branch, path, start], `make the worktree of ${branch}`);
    }
    if (!remote) await git(path, ['push', '--quiet', 'origin', `HEAD:refs/heads/${branch}`], `push the new branch ${branch}`);
    if (answeredIteration) await restoreWorkInProgress(space, mirror, answeredIteration.runId, answeredIteration.index);
  });
}

/** Where a task's uncommitted work is kept on the remote, beside its branch (never a branch: not in anyone's log). */
const workRef = (runId: string) => `refs/obra/work/${runId}`;
const workTrailer = (runId: string, index: number) => `Obra-Work: ${runId}/${index}`;

/**
 * The agent's work of one call, as the worktree holds it (uncommitted), saved on the remote before the call's
 * answer goes to the journal: a commit of the worktree (made with an index of its own, so the worktree's is
 * untouched) on top of the branch, pushed to `refs/obra/work/<runId>`. A worker that takes the task on after the
 * answer is in the journal puts it back (see prepareCheckout); one that finds the call not answered in the
 * journal calls again on the clean branch. Nothing changed: nothing saved.
 */
export async function saveWorkInProgress(space: MovingCheckout, runId: string, index: number): Promise<void> {
  const { path } = space;
  if (!(await git(path, ['status', '--porcelain', '--untracked-files=all'], 'look for the agent\'s changes'))) return;
  const index_ = join(path, '..', `.${runId}.work-index`);
  const env = { GIT_INDEX_FILE: index_ };
  try {
    await git(path, ['read-tree', 'HEAD'], 'save the agent\'s work', { env });
    await git(path, ['add', '--all'], 'save the agent\'s work', { env });
    const tree = (await git(path, ['write-tree'], 'save the agent\'s work', { env })).trim();
    const commit = (await git(path, ['commit-tree', tree, '-p', 'HEAD', '-m', `obra ${runId}: the work of iteration ${index}, not committed yet\n\n${workTrailer(runId, index)}`], 'save the agent\'s work')).trim();
    await git(path, ['push', '--quiet', '--force', 'origin', `${commit}:${workRef(runId)}`], `push the agent's work of ${space.branch}`);
  } finally {
    rmSync(index_, { force: true });
  }
}

/** Puts back the saved work of iteration `index` when it was made on the branch as it stands now. */
async function restoreWorkInProgress(space: MovingCheckout, mirror: string, runId: string, index: number): Promise<void> {
  const ref = workRef(runId);
  if ((await tryGit(mirror, ['fetch', '--quiet', 'origin', `+${ref}:${ref}`])).exitCode !== 0) return; // none saved
  const saved = await tryGit(space.path, ['log', '-1', '--format=%P%n%B', ref]);
  if (saved.exitCode !== 0) return;
  const [parent, ...message] = saved.stdout.split('\n');
  const head = (await git(space.path, ['rev-parse', 'HEAD'], `read ${space.branch}`)).trim();
  if (parent !== head || !message.includes(workTrailer(runId, index))) return;
  // The worktree as the agent left it, the index as the branch has it: its changes are uncommitted again.
  await git(space.path, ['read-tree', '-u', '--reset', ref], 'put back the agent\'s work');
  await git(space.path, ['reset', '--quiet'], 'put back the agent\'s work');
}

/** Where a new task's branch starts: `base` as the remote has it (a branch), or as given (a commit); else the remote's HEAD. */
async function startOf(mirror: string, base: string | null): Promise<string> {
  // The remote's default branch is the copy's HEAD (set when it was cloned), as last fetched.
  const name = base ?? (await tryGit(mirror, ['symbolic-ref', '--quiet', '--short', 'HEAD'])).stdout.trim();
  if (!name) return 'HEAD';
  const asBranch = `refs/remotes/origin/${name}`;
  return (await tryGit(mirror, ['rev-parse', '--verify', '--quiet', asBranch])).exitCode === 0 ? asBranch : (base ?? 'HEAD');
}

/** The iteration's changes committed (when there are any) and the branch pushed. */
export async function saveToRemote(space: MovingCheckout, runId: string, record: IterationRecord): Promise<void> {
  await commitIteration(space.path, runId, record);
  await git(space.path, ['push', '--quiet', 'origin', `HEAD:refs/heads/${space.branch}`], `push ${space.branch}`);
}
