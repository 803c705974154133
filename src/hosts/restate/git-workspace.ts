import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { IterationRecord } from '../../core/types.js';
import { git, tryGit } from '../../workspace/git.js';
import { commitIteration } from '../../workspace/worktree.js';

/**
 * A task that moves between workers works in a checkout of its repository on whichever worker holds it:
 * `<work dir>/<runId>`, on the branch `obra/<runId>`. The branch on the remote is the task's state of work:
 * a worker that takes the task clones the repository (or fetches, when it had it before) and checks out the
 * branch as the remote has it — every earlier iteration's commit, whoever made it. After every iteration the
 * worker commits and pushes before the iteration is recorded, so a recorded iteration's work is always on the
 * remote (a worker killed in between has its commit found there by the next one).
 */
export interface MovingCheckout {
  url: string;
  branch: string;
  base: string | null;
  /** Where this worker keeps it. */
  path: string;
}

/** Clones or fetches, then checks out the task's branch as the remote has it (made from `base` the first time). */
export async function prepareCheckout(space: MovingCheckout): Promise<void> {
  const { url, branch, path } = space;
  if (!existsSync(join(path, '.git'))) {
    mkdirSync(dirname(path), { recursive: true });
    await git(dirname(path), ['clone', '--quiet', '--no-checkout', url, path], `clone ${url}`);
  } else {
    await git(path, ['fetch', '--quiet', 'origin'], `fetch ${url}`);
  }
  const remote = (await tryGit(path, ['rev-parse', '--verify', '--quiet', `refs/remotes/origin/${branch}`])).exitCode === 0;
  if (remote) {
    // What the remote holds wins: anything this checkout had beyond it was never recorded as an iteration.
    await git(path, ['checkout', '--quiet', '--force', '-B', branch, `origin/${branch}`], `check out ${branch}`);
    await git(path, ['clean', '-fdq'], `clean the checkout of ${branch}`);
    return;
  }
  const start = space.base ?? 'origin/HEAD';
  await git(path, ['checkout', '--quiet', '--force', '-B', branch, start], `make the branch ${branch} from ${start}`);
  await git(path, ['push', '--quiet', '--set-upstream', 'origin', branch], `push the new branch ${branch}`);
}

/** The iteration's changes committed (when there are any) and the branch pushed. */
export async function saveToRemote(space: MovingCheckout, runId: string, record: IterationRecord): Promise<void> {
  await commitIteration(space.path, runId, record);
  await git(space.path, ['push', '--quiet', 'origin', `HEAD:refs/heads/${space.branch}`], `push ${space.branch}`);
}
