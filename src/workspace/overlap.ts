import type { OverlapRecord } from '../persisted/overlap.js';
import { trialMerge } from './conflict.js';
import { tryGit } from './git.js';

/**
 * Which files a task's branch changes, and whether it would merge cleanly with its base branch and with each
 * other unmerged task branch of the repository — by trial merges that touch no worktree and no ref
 * (`git merge-tree --write-tree`). Cheap enough to run after every iteration's commit: a pair is merged for
 * trial only when both sides change a common path (two branches from the same commit that change different
 * files merge cleanly), and a trial's result is kept by the tips it was made for (a pair of tips merges the
 * same way for ever), here and in the records of the last look.
 */

export interface OverlapSubject {
  repo: string;
  runId: string;
  branch: string;
  /** The commit the branch started from. */
  baseCommit: string;
  baseBranch: string | null;
}

export interface OverlapPeer {
  runId: string;
  branch: string;
  baseCommit: string;
  /** The peer's own last record: its files and its trials are reused while its tip has not moved. */
  record: OverlapRecord | null;
}

/** Trial merges by the pair of tips they joined (order does not matter), in this process. */
const trials = new Map<string, string[]>();
/** Changed files by "start..tip". */
const changes = new Map<string, string[]>();
const CACHE_LIMIT = 20_000;

function remember<V>(cache: Map<string, V>, key: string, value: V): V {
  if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value!);
  cache.set(key, value);
  return value;
}

const pairKey = (a: string, b: string) => (a < b ? `${a}|${b}` : `${b}|${a}`);

/** Works the record out for `subject` against its base branch and `peers` (those whose branch is gone are left out). */
export async function computeOverlap(subject: OverlapSubject, peers: OverlapPeer[], previous: OverlapRecord | null, known?: Map<string, string>): Promise<OverlapRecord> {
  const refs = [`refs/heads/${subject.branch}`, ...(subject.baseBranch ? [`refs/heads/${subject.baseBranch}`] : []), ...peers.map((p) => `refs/heads/${p.branch}`)];
  const tips = known ?? (await tipsOf(subject.repo, refs));
  const tip = tips.get(`refs/heads/${subject.branch}`);
  if (!tip) throw new Error(`the branch ${subject.branch} is gone`);
  const baseTip = subject.baseBranch ? (tips.get(`refs/heads/${subject.baseBranch}`) ?? null) : null;
  // The branch's files, the trial against the base and the likely trials (below) at once: one wait for git.
  const ownFiles = changedFiles(subject.repo, subject.baseCommit, tip);
  // A base that has not moved since the branch started merges cleanly.
  const baseTrial = !baseTip || baseTip === subject.baseCommit ? Promise.resolve([]) : conflictsOf(subject.repo, tip, baseTip);
  // Awaited below; a failure must not count as unhandled before then.
  ownFiles.catch(() => {});
  baseTrial.catch(() => {});
  // What the branch changed at the last look: a peer that met those files is tried without waiting for the diff.
  const guess = previous?.files ?? [];

  const reused = (otherTip: string): string[] | undefined => {
    const key = pairKey(tip, otherTip);
    if (trials.has(key)) return trials.get(key);
    if (previous?.tip === tip) return previous.others.find((o) => o.tip === otherTip)?.conflicts;
    return undefined;
  };
  const others = await Promise.all(
    peers.map(async (peer) => {
      const peerTip = tips.get(`refs/heads/${peer.branch}`);
      if (!peerTip) return null;
      const known = reused(peerTip) ?? (peer.record?.tip === peerTip ? peer.record.others.find((o) => o.runId === subject.runId && o.tip === tip)?.conflicts : undefined);
      if (known) return { runId: peer.runId, branch: peer.branch, tip: peerTip, conflicts: known };
      // From the same start, branches that change no common path merge cleanly: no trial needed.
      if (peer.baseCommit === subject.baseCommit) {
        const theirs = peer.record?.tip === peerTip ? peer.record.files : await changedFiles(subject.repo, peer.baseCommit, peerTip);
        if (!touchSamePath(guess, theirs) && !touchSamePath(await ownFiles, theirs)) return { runId: peer.runId, branch: peer.branch, tip: peerTip, conflicts: remember(trials, pairKey(tip, peerTip), []) };
      }
      return { runId: peer.runId, branch: peer.branch, tip: peerTip, conflicts: await conflictsOf(subject.repo, tip, peerTip) };
    }),
  );
  const files = await ownFiles;
  const baseConflicts = files.length ? await baseTrial : [];
  return {
    computedAt: new Date().toISOString(),
    tip,
    baseBranch: subject.baseBranch,
    baseTip,
    files,
    baseConflicts,
    others: others.filter((o): o is NonNullable<typeof o> => o !== null),
  };
}

/** The commits the refs point at (one git for them all); a ref that does not exist is left out. */
export async function tipsOf(repo: string, refs: string[]): Promise<Map<string, string>> {
  const listed = await tryGit(repo, ['for-each-ref', '--format=%(refname) %(objectname)', ...refs]);
  const tips = new Map<string, string>();
  for (const line of listed.stdout.split('\n')) {
    const at = line.lastIndexOf(' ');
    if (at > 0) tips.set(line.slice(0, at), line.slice(at + 1));
  }
  return tips;
}

/** The paths a branch changes from `start` to `tip` (a rename: both its paths). */
export async function changedFiles(repo: string, start: string, tip: string): Promise<string[]> {
  const key = `${start}..${tip}`;
  const known = changes.get(key);
  if (known) return known;
  if (start === tip) return remember(changes, key, []);
  const diff = await tryGit(repo, ['diff', '--name-only', '--no-renames', '-z', start, tip]);
  if (diff.exitCode !== 0) throw new Error(`git diff ${start} ${tip} failed: ${diff.stderr.trim().split('\n')[0]}`);
  return remember(changes, key, diff.stdout.split('\0').filter(Boolean));
}

/** The files a trial merge of the two commits conflicts in ([]: clean), kept by the pair of tips. */
async function conflictsOf(repo: string, a: string, b: string): Promise<string[]> {
  const key = pairKey(a, b);
  const known = trials.get(key);
  if (known) return known;
  const merged = await trialMerge(repo, a, b);
  return remember(trials, key, merged.clean ? [] : merged.files);
}

/** Whether two lists of changed paths share a path, or one's file is a folder of the other's. */
export function touchSamePath(ours: string[], theirs: string[]): boolean {
  if (!ours.length || !theirs.length) return false;
  const files = new Set(ours);
  const folders = new Set<string>();
  for (const path of ours) for (let at = path.indexOf('/'); at > 0; at = path.indexOf('/', at + 1)) folders.add(path.slice(0, at));
  for (const path of theirs) {
    if (files.has(path) || folders.has(path)) return true;
    for (let at = path.indexOf('/'); at > 0; at = path.indexOf('/', at + 1)) if (files.has(path.slice(0, at))) return true;
  }
  return false;
}
