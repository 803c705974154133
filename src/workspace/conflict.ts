import { existsSync, openSync, readSync, closeSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../core/errors.js';
import { MERGE_CONFLICT_EXIT_CODE } from '../core/statuses.js';
import type { ConflictGate } from '../core/types.js';
import { git, tryGit } from './git.js';

/**
 * The git side of a conflict's resolution (`obra merge --resolve`): a trial merge that touches no worktree (what
 * conflicts, with the hunks), the conflicted merge started in the resolution's worktree, the markers left in it,
 * and the merge commit that lands the resolution.
 */

/** What a trial merge of `tip` into `base` found: the files that conflict, git's messages, and the merged tree (markers included). */
export interface TrialMerge {
  clean: boolean;
  /** The tree git would write, with conflict markers in the conflicted text files. */
  tree: string;
  files: string[];
  /** git's own lines: `CONFLICT (content): Merge conflict in a.txt`, `CONFLICT (modify/delete): ...`. */
  messages: string[];
}

/**
 * `git merge-tree --write-tree`: the merge of `tip` into `base` without a worktree, an index or a ref (git ≥ 2.38);
 * it writes only objects. With `-z` the paths come as they are (no quoting of non-ASCII names): a quoted name
 * would miss the file in the merged tree.
 */
export async function trialMerge(repo: string, base: string, tip: string): Promise<TrialMerge> {
  const args = ['merge-tree', '--write-tree', '--name-only', '-z', base, tip];
  const result = await tryGit(repo, args);
  // 0: clean, 1: conflicts; anything else is git's own failure.
  if (result.exitCode !== 0 && result.exitCode !== 1) {
    const why = (result.stderr || result.stdout).trim().split('\n').slice(0, 3).join(' / ');
    throw new UserError(`cannot try merging ${tip} into ${base}: git ${args.join(' ')} failed in ${repo}: ${why || `exit ${result.exitCode}`}`);
  }
  // "<tree>\0<path>\0…<path>\0\0", then each message as "<n>\0<n paths\0…><type>\0<message>\0".
  const entries = result.stdout.split('\0');
  const files: string[] = [];
  let at = 1;
  for (; at < entries.length && entries[at]; at++) files.push(entries[at]!);
  const messages: string[] = [];
  for (at += 1; at < entries.length; ) {
    const paths = Number(entries[at]);
    if (!Number.isInteger(paths) || paths < 0) break;
    const message = entries[at + paths + 2] ?? '';
    messages.push(...message.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('CONFLICT')));
    at += paths + 3;
  }
  return { clean: result.exitCode === 0, tree: entries[0] ?? '', files: [...new Set(files)], messages };
}

/** A conflict region of a file and a few lines around it, numbered as in the file. */
export interface Hunk {
  path: string;
  text: string;
}

/**
 * The conflict regions of the conflicted files in a trial merge's tree, each with `context` lines around it,
 * at most `maxChars` in all (the prompt stays readable; the agent opens the files for the rest).
 */
export async function conflictHunks(repo: string, merge: TrialMerge, options: { context?: number; maxChars?: number } = {}): Promise<{ hunks: Hunk[]; cut: boolean }> {
  const context = options.context ?? 3;
  let left = options.maxChars ?? 12_000;
  const hunks: Hunk[] = [];
  let cut = false;
  for (const path of merge.files) {
    const shown = await tryGit(repo, ['cat-file', '-p', `${merge.tree}:${path}`]);
    // Not in the merged tree (deleted on one side, or both), or a binary: git's message says what happened.
    if (shown.exitCode !== 0 || shown.stdout.includes('\0')) continue;
    const lines = shown.stdout.split('\n');
    for (const [from, to] of markerRegions(lines)) {
      const start = Math.max(0, from - context);
      const end = Math.min(lines.length - 1, to + context);
      const width = String(end + 1).length;
      const text = lines.slice(start, end + 1).map((line, i) => `${String(start + i + 1).padStart(width)}  ${line}`).join('\n');
      if (text.length > left) {
        cut = true;
        break;
      }
      left -= text.length;
      hunks.push({ path, text });
    }
    if (cut) break;
  }
  return { hunks, cut };
}

/** Lines git writes around a conflict: seven `<`, `|`, `=` or `>`, as `git diff --check` finds them. */
const MARKER = /^(?:<{7}|>{7}|\|{7})(?: |$)|^={7}$/;

/** Each `<<<<<<<` … `>>>>>>>` region of a file, as [first, last] line indexes. */
function markerRegions(lines: string[]): [number, number][] {
  const regions: [number, number][] = [];
  let open = -1;
  lines.forEach((line, i) => {
    if (line.startsWith('<<<<<<<') && MARKER.test(line)) open = i;
    else if (line.startsWith('>>>>>>>') && MARKER.test(line) && open >= 0) {
      regions.push([open, i]);
      open = -1;
    }
  });
  return regions;
}

/** A file with conflict markers left, and the lines (1-based) they are on. */
export interface MarkedFile {
  path: string;
  lines: number[];
}

/**
 * The conflict gate: the files of a worktree with conflict markers left — among the conflicted ones, and every
 * file that differs from `gate.since` or is new (a marker pasted elsewhere counts too). Files the merge did not
 * touch are not read: a repository may hold marker-like lines on purpose (git's own test data, say).
 */
export async function conflictMarkersLeft(dir: string, gate: ConflictGate): Promise<MarkedFile[]> {
  const changed = (await tryGit(dir, ['diff', '--name-only', '-z', '--no-renames', gate.since])).stdout.split('\0');
  const untracked = (await tryGit(dir, ['ls-files', '--others', '--exclude-standard', '-z'])).stdout.split('\0');
  const paths = [...new Set([...gate.files, ...changed, ...untracked].filter(Boolean))].sort();
  const marked: MarkedFile[] = [];
  for (const path of paths) {
    const lines = markerLines(join(dir, path));
    if (lines.length) marked.push({ path, lines });
  }
  return marked;
}

/** The 1-based lines of a text file that are conflict markers; none for a file that is gone, binary or huge. */
function markerLines(file: string): number[] {
  try {
    if (!existsSync(file)) return [];
    const stat = statSync(file);
    if (!stat.isFile() || stat.size > 16 * 1024 * 1024 || looksBinary(file)) return [];
    const found: number[] = [];
    readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
      if (MARKER.test(line.replace(/\r$/, ''))) found.push(i + 1);
    });
    return found;
  } catch {
    return [];
  }
}

/** As git decides it: a NUL in the first 8000 bytes. */
function looksBinary(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const buffer = Buffer.alloc(8000);
    const read = readSync(fd, buffer, 0, buffer.length, 0);
    return buffer.subarray(0, read).includes(0);
  } finally {
    closeSync(fd);
  }
}

/**
 * Whether the worktree still merges `tip`: the merge in progress, or concluded by a commit that has it. False
 * when it was aborted or reset: the worktree would then land without the task's changes.
 */
export async function stillMerging(dir: string, tip: string): Promise<boolean> {
  const mergeHead = await tryGit(dir, ['rev-parse', '--verify', '--quiet', 'MERGE_HEAD']);
  if (mergeHead.exitCode === 0 && mergeHead.stdout.trim() === tip) return true;
  return (await tryGit(dir, ['merge-base', '--is-ancestor', tip, 'HEAD'])).exitCode === 0;
}

/** `shared.txt (lines 2, 4, 6), notes.md (line 3)`. */
export function describeMarkedFiles(files: MarkedFile[]): string {
  return files.map((f) => `${f.path} (line${f.lines.length === 1 ? '' : 's'} ${f.lines.slice(0, 6).join(', ')}${f.lines.length > 6 ? ', …' : ''})`).join(', ');
}

/**
 * Starts the conflicted merge in a resolution's worktree: `tip` merged into the branch it is on (the base),
 * stopped before the commit, conflicts and all. Only on a branch with no commit of its own yet and no merge in
 * progress: a worktree found again after a crash keeps what the agent did. Returns whether it started one.
 */
export async function beginResolutionMerge(path: string, options: { tip: string; baseCommit: string; message: string }): Promise<boolean> {
  const head = (await git(path, ['rev-parse', 'HEAD'], 'read the resolution\'s HEAD')).trim();
  if (head !== options.baseCommit) return false;
  if ((await tryGit(path, ['rev-parse', '--verify', '--quiet', 'MERGE_HEAD'])).exitCode === 0) return false;
  const merged = await tryGit(path, ['merge', '--no-ff', '--no-commit', '-m', options.message, options.tip]);
  if (merged.exitCode !== 0 && (await tryGit(path, ['rev-parse', '--verify', '--quiet', 'MERGE_HEAD'])).exitCode !== 0) {
    const why = (merged.stderr || merged.stdout).trim().split('\n')[0];
    throw new UserError(`cannot start the merge of ${options.tip} in the resolution's worktree ${path}: git merge failed: ${why} — discard this resolution (\`obra discard\`) and start another with \`obra merge --resolve\``);
  }
  return true;
}

/**
 * The merge commit that lands a resolution: the resolved tree (the resolution branch's last commit), with the
 * base it started from and the task's tip as parents — what a clean `obra merge` would have made, in one commit
 * whatever the number of iterations the resolution took (the base's history never holds a tree with markers).
 * Made again, it is the same commit (same tree, parents, message and times).
 */
export async function resolvedMergeCommit(repo: string, options: { resolved: string; base: string; tip: string; message: string }): Promise<string> {
  const resolved = await git(repo, ['show', '-s', '--format=%T%n%an%n%ae%n%aI', options.resolved], 'read the resolution\'s commit');
  const [tree, name, email, date] = resolved.split('\n');
  const env = { GIT_AUTHOR_NAME: name!, GIT_AUTHOR_EMAIL: email!, GIT_AUTHOR_DATE: date!, GIT_COMMITTER_NAME: name!, GIT_COMMITTER_EMAIL: email!, GIT_COMMITTER_DATE: date! };
  return (await git(repo, ['commit-tree', tree!, '-p', options.base, '-p', options.tip, '-m', options.message], 'write the resolved merge', { env })).trim();
}

/** How a task's branch is landed on its base branch (config `merge.strategy`, `--strategy`). */
export const MERGE_STRATEGIES = ['merge', 'rebase', 'squash'] as const;
export type MergeStrategy = (typeof MERGE_STRATEGIES)[number];

/**
 * A landing that conflicts, as a value: which task, which branch at which commit, onto which base branch at
 * which commit, and the files — enough to start a resolution from (the merge is undone; nothing was changed).
 */
export interface MergeConflict {
  runId: string;
  repo: string;
  /** The task's branch and its tip. */
  branch: string;
  tip: string;
  /** The base branch, and the commit the landing was tried on. */
  into: string;
  baseCommit: string;
  strategy: MergeStrategy;
  /** The paths git left conflicted. */
  files: string[];
}

/** A conflict as the CLI reports it: one line, exit code 11, with the conflict for whoever resolves it. */
export class MergeConflictError extends UserError {
  constructor(
    message: string,
    readonly conflict: MergeConflict,
  ) {
    super(message, MERGE_CONFLICT_EXIT_CODE);
  }

  /** The conflicted files. */
  get files(): string[] {
    return this.conflict.files;
  }
}
