import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { UserError } from '../core/errors.js';
import type { MergeConflict, MergeStrategy } from './conflict.js';
import { git, tryGit } from './git.js';
import { conflictedPaths, inTurn, mergeThatBrought } from './worktree.js';

/**
 * One landing of the merge queue, on the git side: the task's branch put onto its base branch's tip in a
 * scratch worktree (never the user's checkout), where the checks run; then the base branch moved to it with a
 * compare-and-swap, only if it is still where the landing started. Each landing commit carries a trailer
 * (`Obra-Landed: <runId>`), so a landing is found again after a crash and never made twice.
 */

export const landedTrailer = (runId: string) => `Obra-Landed: ${runId}`;

export interface LandingTask {
  repo: string;
  runId: string;
  branch: string;
  /** The base branch it lands on. */
  into: string;
  /** Its first line names the landing commit. */
  task: string;
}

/** The commit a branch's tip is at, or null when the branch is gone. */
export async function tipOf(repo: string, branch: string): Promise<string | null> {
  const tip = await tryGit(repo, ['rev-parse', '--verify', '--quiet', `refs/heads/${branch}^{commit}`]);
  return tip.exitCode === 0 ? tip.stdout.trim() : null;
}

/**
 * Where the task is in its base branch already, or null: its tip is in it (merged, fast-forwarded, or `obra
 * merge` did it), or a commit of it carries the task's trailer (a rebase or a squash). With the branch's tip,
 * which the landing starts from.
 */
export async function landedAs(task: LandingTask): Promise<{ tip: string; landed: string | null }> {
  const { tip, merge } = await mergeThatBrought(task.repo, task.branch, task.into);
  if (merge) return { tip, landed: merge };
  const found = await tryGit(task.repo, ['log', '-1', '--format=%H', `--grep=^${landedTrailer(task.runId)}$`, `refs/heads/${task.into}`, '--']);
  return { tip, landed: found.exitCode === 0 && found.stdout.trim() ? found.stdout.trim() : null };
}

export type Landing = { kind: 'ready'; commit: string; dir: string } | { kind: 'empty'; dir: string } | { kind: 'conflict'; conflict: MergeConflict };

/**
 * Makes the landing commit of `tip` (the branch's tip, as `landedAs` read it) on `baseTip` in the scratch
 * worktree `dir` (one left there by a killed queue is removed first). A conflict is undone and returned as a
 * value; the scratch worktree is then gone.
 */
export async function prepareLanding(task: LandingTask, options: { tip: string; baseTip: string; strategy: MergeStrategy; dir: string }): Promise<Landing> {
  const { tip, baseTip, strategy, dir } = options;
  // Rebase starts from the task's commits, the other two from the base's tip.
  await scratchAt(task.repo, dir, strategy === 'rebase' ? tip : baseTip);
  const title = `${firstLine(task.task)} (obra run ${task.runId})`;
  const trailer = landedTrailer(task.runId);
  let done;
  if (strategy === 'merge') {
    done = await tryGit(dir, ['merge', '--no-ff', '--no-verify', '--no-edit', '-m', `Merge ${task.branch}: ${title}`, '-m', trailer, tip]);
  } else if (strategy === 'squash') {
    done = await tryGit(dir, ['merge', '--squash', '--no-verify', tip]);
    if (done.exitCode === 0) {
      if ((await tryGit(dir, ['diff', '--cached', '--quiet'])).exitCode === 0) return { kind: 'empty', dir };
      done = await tryGit(dir, ['commit', '--no-verify', '--quiet', '-m', title, '-m', trailer]);
    }
  } else {
    done = await tryGit(dir, ['rebase', '--no-verify', baseTip]);
    if (done.exitCode === 0) {
      const head = (await git(dir, ['rev-parse', 'HEAD'], 'read the rebased commits')).trim();
      if (head === baseTip) return { kind: 'empty', dir };
      // The last rebased commit names the landing: found again by its trailer.
      done = await tryGit(dir, ['commit', '--amend', '--no-verify', '--quiet', '--no-edit', '--trailer', trailer]);
    }
  }
  if (done.exitCode !== 0) {
    const files = await conflictedPaths(dir);
    const why = (done.stderr || done.stdout).trim().split('\n')[0];
    await removeScratch(task.repo, dir);
    if (!files.length) throw new UserError(`cannot land ${task.branch} on ${task.into} (${strategy}): ${why}; nothing was changed`);
    return { kind: 'conflict', conflict: { runId: task.runId, repo: task.repo, branch: task.branch, tip, into: task.into, baseCommit: baseTip, strategy, files } };
  }
  return { kind: 'ready', commit: (await git(dir, ['rev-parse', 'HEAD'], 'read the landing commit')).trim(), dir };
}

/** Scratch worktrees this process made, left clean by a landing: the next landing reuses it (a checkout of what changed, not of every file). */
const reusable = new Set<string>();

/**
 * The scratch worktree at `commit`, detached and clean — ignored files too (a build output of the last landing's
 * checks must not make the next one's pass). One found from another process (a queue cut short) is made anew.
 */
async function scratchAt(repo: string, dir: string, commit: string): Promise<void> {
  if (reusable.has(dir) && existsSync(join(dir, '.git'))) {
    reusable.delete(dir);
    await git(dir, ['checkout', '--quiet', '--force', '--detach', commit], 'move the scratch worktree');
    await git(dir, ['clean', '-ffdxq'], 'clean the scratch worktree');
  } else {
    await removeScratch(repo, dir);
    mkdirSync(dirname(dir), { recursive: true });
    await inTurn(repo, () => git(repo, ['worktree', 'add', '--quiet', '--detach', dir, commit], 'make a scratch worktree to land in'));
  }
}

/** The landing in `dir` is over and the worktree clean of git state: the next landing may reuse it. */
export function reuseScratch(dir: string): void {
  reusable.add(dir);
}

/** Removes a scratch worktree (and git's note of it); nothing in it is anyone's work. */
export async function removeScratch(repo: string, dir: string): Promise<void> {
  reusable.delete(dir);
  if (existsSync(dir)) await tryGit(repo, ['worktree', 'remove', '--force', dir]);
  rmSync(dir, { recursive: true, force: true });
  await inTurn(repo, () => tryGit(repo, ['worktree', 'prune']));
}

/** The worktree (the user's checkout, or another) that has `branch` checked out, or null. */
export async function checkoutOf(repo: string, branch: string): Promise<string | null> {
  const listed = await git(repo, ['worktree', 'list', '--porcelain'], 'list the worktrees');
  let path: string | null = null;
  for (const line of listed.split('\n')) {
    if (line.startsWith('worktree ')) path = line.slice('worktree '.length);
    else if (line === `branch refs/heads/${branch}`) return path;
  }
  return null;
}

/**
 * Moves the base branch from `from` to `to`, only if it is still at `from`. When a checkout has it checked out,
 * that checkout moves with it (a fast-forward: its files follow, never a half-merged state); else the ref moves
 * by a compare-and-swap (`git update-ref <ref> <new> <old>`).
 */
export async function moveBase(repo: string, into: string, from: string, to: string): Promise<void> {
  const moved = `${into} moved while the queue landed on it (someone committed to it?) — nothing more was landed; run the queue again`;
  const checkout = await checkoutOf(repo, into);
  if (checkout) {
    const head = (await git(checkout, ['rev-parse', 'HEAD'], 'read the checkout')).trim();
    if (head !== from) throw new UserError(moved);
    const ff = await tryGit(checkout, ['merge', '--ff-only', '--quiet', to]);
    if (ff.exitCode !== 0) throw new UserError(`cannot move ${checkout} (on ${into}) to the landing: ${(ff.stderr || ff.stdout).trim().split('\n')[0]} — commit or stash your changes there and run the queue again; ${into} was not moved`);
    return;
  }
  const swapped = await tryGit(repo, ['update-ref', '-m', `obra merge: land on ${into}`, `refs/heads/${into}`, to, from]);
  if (swapped.exitCode !== 0) throw new UserError(moved);
}

const firstLine = (text: string) => {
  const line = text.split('\n').map((l) => l.trim()).find(Boolean) ?? 'task';
  return line.length > 72 ? `${line.slice(0, 71)}…` : line;
};
