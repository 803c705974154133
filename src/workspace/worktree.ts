import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { UserError } from '../core/errors.js';
import { MERGE_CONFLICT_EXIT_CODE } from '../core/statuses.js';
import type { IterationRecord } from '../core/types.js';
import type { Workspace } from '../persisted/run-file.js';
import { MergeConflictError } from './conflict.js';
import { git, repositoryOf, tryGit, type GitResult } from './git.js';

/**
 * A queued task's own git worktree: a branch `obra/<runId>` made from the base when the task is submitted, a
 * worktree for it under the store (`<store>/worktrees/<runId>`, never inside the user's checkout) when a worker
 * starts it, a commit after every iteration (so no work is ever only in a worktree), and then `obra diff`,
 * `obra merge`, `obra discard`. A crash leaves at most a worktree folder, which the next start finds again — or
 * the branch, from which it makes the worktree anew.
 */

export type WorktreeSpace = Extract<Workspace, { kind: 'worktree' }>;

export const branchOf = (runId: string) => `obra/${runId}`;

/** Makes the task's branch from `base` (default: the repository's HEAD) and says where its worktree will be. */
export async function prepareWorktree(options: { repoDir: string; base?: string; runId: string; storeDir: string; topLevel?: boolean }): Promise<WorktreeSpace> {
  // `topLevel`: the caller found `repoDir` to be the repository's top folder already.
  const repo = options.topLevel ? options.repoDir : await repositoryOf(options.repoDir);
  if (!repo) throw new UserError(`--repo ${options.repoDir} is not a git repository — point it at a folder inside one, or leave it out to work in a plain folder`);
  const base = options.base ?? 'HEAD';
  const branch = branchOf(options.runId);
  // Three reads at once (a submit from the board or an MCP client waits on them): the base, the branch, its name.
  const [resolved, existing, baseBranch] = await Promise.all([
    tryGit(repo, ['rev-parse', '--verify', '--quiet', `${base}^{commit}`]),
    tryGit(repo, ['show-ref', '--verify', '--quiet', `refs/heads/${branch}`]),
    branchNamed(repo, base),
  ]);
  if (resolved.exitCode !== 0) {
    throw new UserError(`--base ${base} does not exist in ${repo} — name a branch, a tag or a commit there (\`git -C ${repo} branch -a\` lists the branches)`);
  }
  const baseCommit = resolved.stdout.trim();
  if (existing.exitCode === 0) {
    throw new UserError(`the branch ${branch} already exists in ${repo} — give the task another --run-id, or delete that branch first`);
  }
  await git(repo, ['branch', branch, baseCommit], `make the branch ${branch}`);
  const path = join(resolve(options.storeDir), 'worktrees', options.runId);
  return { kind: 'worktree', repo, branch, base, baseCommit, baseBranch, path };
}

/**
 * For a task that follows another run's branch (`follows`): moves its branch to where that one ended, before the
 * task's worktree is made, and returns the space with its new base (to be recorded) — or null when there is
 * nothing to move: the branch already starts there, or the task has commits of its own or a worktree already.
 * It starts from what actually landed: when the followed run was merged first (`mergedAs`, the commit its landing
 * left the base at, a resolved conflict included), from that commit; else from the followed branch's tip; and
 * when that branch is gone unmerged (discarded), it keeps the base it was submitted with.
 */
export async function startFromFollowed(space: WorktreeSpace, mergedAs: string | null = null): Promise<WorktreeSpace | null> {
  if (!space.follows || space.baseCommit === mergedAs || (space.base === space.follows && !mergedAs)) return null;
  const followed = mergedAs ? null : await tryGit(space.repo, ['rev-parse', '--verify', '--quiet', `refs/heads/${space.follows}^{commit}`]);
  if (followed && followed.exitCode !== 0) return null;
  const head = followed ? followed.stdout.trim() : mergedAs!;
  const own = (await git(space.repo, ['rev-parse', '--verify', `refs/heads/${space.branch}^{commit}`], `read the branch ${space.branch}`)).trim();
  const moved = { ...space, base: followed ? space.follows : head, baseCommit: head };
  // Moved already (a start that stopped before it recorded the move): only the record is missing.
  if (own === head) return moved;
  if (own !== space.baseCommit || existsSync(space.path)) return null;
  await inTurn(space.repo, async () => {
    const move = () => tryGit(space.repo, ['branch', '--force', space.branch, head]);
    if ((await move()).exitCode === 0) return;
    // A worktree whose folder is gone still holds its branch for git until pruned (pruned only then: another
    // process may be adding a worktree right now).
    await git(space.repo, ['worktree', 'prune'], 'tidy the list of worktrees');
    const again = await move();
    if (again.exitCode !== 0) throw new UserError(`cannot start ${space.branch} from ${space.follows}: git branch --force failed in ${space.repo}: ${(again.stderr || again.stdout).trim().split('\n')[0]}`);
  });
  return moved;
}

/** The branch `base` names (`HEAD`: the one checked out), or null for a commit or a detached HEAD. */
async function branchNamed(repo: string, base: string): Promise<string | null> {
  if (base === 'HEAD') {
    const head = await tryGit(repo, ['symbolic-ref', '--quiet', '--short', 'HEAD']);
    return head.exitCode === 0 ? head.stdout.trim() : null;
  }
  const name = base.replace(/^refs\/heads\//, '');
  return (await tryGit(repo, ['show-ref', '--verify', '--quiet', `refs/heads/${name}`])).exitCode === 0 ? name : null;
}

/**
 * The task's worktree, ready to work in: found again when it is there (a restart after a crash), or made anew
 * from its branch (git forgets a worktree whose folder is gone: `worktree prune`). Returns its folder.
 */
export async function ensureWorktree(space: WorktreeSpace): Promise<string> {
  if (existsSync(join(space.path, '.git'))) {
    const top = await tryGit(space.path, ['rev-parse', '--show-toplevel']);
    const branch = await tryGit(space.path, ['symbolic-ref', '--quiet', '--short', 'HEAD']);
    if (top.exitCode === 0 && resolve(top.stdout.trim()) === resolve(space.path) && branch.stdout.trim() === space.branch) return space.path;
  }
  return inTurn(space.repo, async () => {
    await git(space.repo, ['worktree', 'prune'], 'tidy the list of worktrees');
    // A folder left without its worktree (a crash while it was made): nothing in it was committed or is ours.
    if (existsSync(space.path) && readdirSync(space.path).length) rmSync(space.path, { recursive: true, force: true });
    if ((await tryGit(space.repo, ['show-ref', '--verify', '--quiet', `refs/heads/${space.branch}`])).exitCode !== 0) {
      throw new UserError(`the branch ${space.branch} of this task is gone from ${space.repo} (deleted by hand?) — the task cannot go on; submit it again`);
    }
    mkdirSync(dirname(space.path), { recursive: true });
    // Another process may be adding a worktree to the same repository right now (git reads the others' files
    // while they are half-written): try again, a few times, before giving up.
    for (let attempt = 1; ; attempt++) {
      const added = await tryGit(space.repo, ['worktree', 'add', space.path, space.branch]);
      if (added.exitCode === 0) return space.path;
      if (attempt === 4) {
        throw new UserError(`cannot make the worktree of ${space.branch}: git worktree add failed in ${space.repo}: ${(added.stderr || added.stdout).trim().split('\n')[0]}`);
      }
      await tryGit(space.repo, ['worktree', 'prune']);
      rmSync(space.path, { recursive: true, force: true });
      await new Promise((r) => setTimeout(r, 50 * attempt + Math.random() * 100));
    }
  });
}

/** One worktree change at a time per repository in this process: `git worktree add` is not safe to run side by side. */
const turns = new Map<string, Promise<unknown>>();
export function inTurn<T>(repo: string, work: () => Promise<T>): Promise<T> {
  const before = turns.get(repo) ?? Promise.resolve();
  const mine = before.then(work, work);
  const tail = mine.catch(() => {});
  turns.set(repo, tail);
  void tail.then(() => {
    if (turns.get(repo) === tail) turns.delete(repo);
  });
  return mine;
}

/** Commits what changed in the worktree after an iteration; false when nothing did. Safe to repeat. */
export async function commitIteration(path: string, runId: string, record: IterationRecord): Promise<boolean> {
  // A `persisting` restored after a crash saves again: the commit it made before the crash is not made twice.
  const trailer = iterationTrailer(runId, record.index);
  const head = await tryGit(path, ['log', '-1', '--format=%B']);
  if (head.exitCode === 0 && head.stdout.split('\n').includes(trailer)) return false;
  await git(path, ['add', '--all'], 'stage the iteration\'s changes');
  if ((await tryGit(path, ['diff', '--cached', '--quiet'])).exitCode === 0) return false;
  const answer = record.validation?.answer ?? (record.agent?.outcome.kind === 'answer' ? record.agent.outcome.result.result : '') ?? '';
  const firstLine = answer.split('\n').map((l) => l.trim()).find(Boolean) ?? '(no answer)';
  const message = `obra ${runId} iteration ${record.index}: ${record.decision} — ${firstLine.length > 120 ? `${firstLine.slice(0, 119)}…` : firstLine}\n\n${trailer}`;
  // The user's hooks are for the user's commits: Obra's are checkpoints of the agent's work.
  await git(path, ['commit', '--no-verify', '--quiet', '-m', message], 'commit the iteration');
  return true;
}

/** The trailer that names the iteration a commit saves: one commit per iteration, found again after a crash. */
export function iterationTrailer(runId: string, index: number): string {
  return `Obra-Iteration: ${runId}/${index}`;
}

/** The task's changes: its branch against the commit it started from (committed work only). */
export async function diffOf(space: WorktreeSpace): Promise<string> {
  return git(space.repo, ['diff', space.baseCommit, space.branch], `show the diff of ${space.branch}`);
}

/**
 * Merges the task's branch into its base branch in the user's checkout — only when that checkout is on the base
 * branch and clean; a conflict is undone (`merge --abort`) and reported with the files (exit code 11). Nothing is
 * changed when it refuses. Returns the merge commit; a branch merged already is not merged again, and the merge
 * that brought it in is named (`already`).
 */
export async function mergeInto(space: WorktreeSpace, runId: string): Promise<{ commit: string; already: boolean }> {
  await checkoutOnBase(space, runId);
  const { tip, merge: earlier } = await mergeThatBrought(space.repo, space.branch, space.baseBranch!);
  if (earlier) return { commit: earlier, already: true };
  await checkoutClean(space);
  const merged = await tryGit(space.repo, ['merge', '--no-ff', '--no-edit', '-m', `Merge ${space.branch} (obra run ${runId})`, space.branch]);
  if (merged.exitCode !== 0) {
    const { conflicts, gitSaid } = await abortFailedMerge(space.repo, merged);
    const why = conflicts.length ? `it conflicts with ${space.baseBranch} in ${conflicts.join(', ')}` : gitSaid;
    const message = `cannot merge ${space.branch} into ${space.baseBranch}: ${why} — nothing was changed; merge it yourself (\`git -C ${space.repo} merge ${space.branch}\`) to resolve it`;
    if (!conflicts.length) throw new UserError(message, MERGE_CONFLICT_EXIT_CODE);
    const base = await git(space.repo, ['rev-parse', 'HEAD'], 'read the base');
    throw new MergeConflictError(message, { runId, repo: space.repo, branch: space.branch, tip, into: space.baseBranch!, baseCommit: base.trim(), strategy: 'merge', files: conflicts });
  }
  return { commit: (await git(space.repo, ['rev-parse', 'HEAD'], 'read the merge commit')).trim(), already: false };
}

/**
 * After a merge that failed in a checkout: the paths it left conflicted and git's first line, then the merge
 * undone (`merge --abort`) — the checkout is as it was.
 */
export async function abortFailedMerge(dir: string, failed: GitResult): Promise<{ conflicts: string[]; gitSaid: string }> {
  const conflicts = await conflictedPaths(dir);
  await tryGit(dir, ['merge', '--abort']);
  return { conflicts, gitSaid: (failed.stderr || failed.stdout).trim().split('\n')[0]! };
}

/** The paths a merge, a rebase or a squash left conflicted in a worktree (unmerged in the index). */
export async function conflictedPaths(dir: string): Promise<string[]> {
  return (await tryGit(dir, ['diff', '--name-only', '-z', '--diff-filter=U'])).stdout.split('\0').filter(Boolean);
}

/** Refuses a landing unless the user's checkout is on the task's base branch: nothing is merged into a branch not checked out. */
export async function checkoutOnBase(space: WorktreeSpace, runId: string): Promise<void> {
  if (!space.baseBranch) {
    throw new UserError(`run ${runId} started from ${space.base}, not from a branch: merge ${space.branch} yourself (\`git -C ${space.repo} merge ${space.branch}\`)`);
  }
  const current = (await tryGit(space.repo, ['symbolic-ref', '--quiet', '--short', 'HEAD'])).stdout.trim();
  if (current !== space.baseBranch) {
    throw new UserError(`${space.repo} has ${current || 'a detached HEAD'} checked out, not ${space.baseBranch} (the branch run ${runId} started from) — \`git checkout ${space.baseBranch}\` there first; nothing was changed`);
  }
}

/** Refuses a landing over uncommitted changes in the user's checkout. */
export async function checkoutClean(space: WorktreeSpace): Promise<void> {
  const dirty = await dirtyPaths(space.repo);
  if (dirty.length) throw new UserError(`${space.repo} has uncommitted changes (${fewPaths(dirty)}) — commit or stash them first; nothing was merged`);
}

/** The uncommitted paths of a checkout ([] when clean). */
export async function dirtyPaths(dir: string): Promise<string[]> {
  return changedPaths(await git(dir, ['status', '--porcelain=v1', '-z', '--untracked-files=normal'], 'check the checkout is clean'));
}

/** The first five paths, `, …` when there are more: a refusal names a few, the user's `git status` shows them all. */
export function fewPaths(paths: string[]): string {
  return `${paths.slice(0, 5).join(', ')}${paths.length > 5 ? ', …' : ''}`;
}

/**
 * The paths of `git status --porcelain=v1 -z`: NUL-separated `XY path` entries, a rename's or copy's source in
 * the entry after it. Never trimmed: the first column may be a space (` M index.js`).
 */
export function changedPaths(porcelainZ: string): string[] {
  const entries = porcelainZ.split('\0');
  const paths: string[] = [];
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    if (entry.length < 4) continue;
    paths.push(entry.slice(3));
    if (entry[0] === 'R' || entry[0] === 'C') i++;
  }
  return paths;
}

/**
 * When `branch` is in `into` already, the commit that brought it there: the oldest merge on the way from the
 * branch's tip to `into` that joins it from outside (not HEAD after the merge, which may be another task's), or
 * the tip itself when it came in without a merge commit (a fast-forward, or a branch with no commit of its own).
 * Null when it is not in `into`. With the branch's tip it read (the caller needs it next: not read twice).
 */
export async function mergeThatBrought(repo: string, branch: string, into: string): Promise<{ tip: string; merge: string | null }> {
  const tip = (await git(repo, ['rev-parse', '--verify', `refs/heads/${branch}^{commit}`], `read the branch ${branch}`)).trim();
  return { tip, merge: await mergeOf(repo, branch, tip, into) };
}

async function mergeOf(repo: string, branch: string, tip: string, into: string): Promise<string | null> {
  if ((await tryGit(repo, ['merge-base', '--is-ancestor', tip, `refs/heads/${into}`])).exitCode !== 0) return null;
  // Every commit between the tip and `into`, oldest first, each with its parents.
  const lines = (await git(repo, ['rev-list', '--ancestry-path', '--reverse', '--parents', `${tip}..refs/heads/${into}`], `find the merge of ${branch}`)).split('\n').filter(Boolean);
  const after = new Set([tip, ...lines.map((line) => line.split(' ')[0]!)]);
  for (const line of lines) {
    const [commit, first, ...others] = line.split(' ');
    if (first && !after.has(first) && others.some((parent) => after.has(parent))) return commit!;
  }
  return tip;
}

/** Removes the task's worktree and its branch (its work is gone with it). */
export async function discardWorktree(space: WorktreeSpace): Promise<void> {
  if (existsSync(space.path)) await tryGit(space.repo, ['worktree', 'remove', '--force', space.path]);
  rmSync(space.path, { recursive: true, force: true });
  await tryGit(space.repo, ['worktree', 'prune']);
  await tryGit(space.repo, ['branch', '-D', space.branch]);
}
