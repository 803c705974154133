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

/** Fetches (cloning the first time), then checks out the task's branch as the remote has it (made from `base` the first time). */
export async function prepareCheckout(space: MovingCheckout): Promise<void> {
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
  });
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
