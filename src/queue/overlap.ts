import type { OverlapRecord } from '../persisted/overlap.js';
import type { StatusLine } from '../core/status-line.js';
import type { RunStore } from '../store/run-store.js';
import { readOverlap, writeOverlap } from '../store/overlap-file.js';
import { computeOverlap, tipsOf, type OverlapPeer } from '../workspace/overlap.js';
import { branchOf, type WorktreeSpace } from '../workspace/worktree.js';

/**
 * A worktree task's overlap, worked out after each iteration's commit and kept beside the run, and the warnings
 * `obra status`, `obra show` and the board give on both tasks of a pair that would conflict.
 */

/** Works the task's overlap out again and records it; never fails the run (a problem is returned, not thrown). */
export async function refreshOverlap(store: RunStore, runId: string, space: WorktreeSpace): Promise<OverlapRecord | null> {
  try {
    // Every task branch and the base, with their tips, in one git.
    const tips = await tipsOf(space.repo, ['refs/heads/obra/', ...(space.baseBranch ? [`refs/heads/${space.baseBranch}`] : [])]);
    const peers = unmergedPeers(store, runId, space.repo, tips);
    const runDir = store.runDir(runId);
    const record = await computeOverlap(
      { repo: space.repo, runId, branch: space.branch, baseCommit: space.baseCommit, baseBranch: space.baseBranch },
      peers,
      readOverlap(runDir),
      tips,
    );
    await writeOverlap(runDir, record);
    return record;
  } catch {
    // A warning worked out later is worth less than the task: the next iteration tries again.
    return null;
  }
}

/**
 * Works out again the overlap of every open task of the store in `repo` (after a landing moved a base branch),
 * each recorded as `refreshOverlap` does: the branch tips in one git and the open tasks read once, shared by
 * every task's look (not n `for-each-ref` and n² reads of the store). Never fails (a task's problem skips it).
 */
export async function refreshOpenOverlaps(store: RunStore, repo: string): Promise<void> {
  let open: OpenTask[];
  let tips: Map<string, string>;
  try {
    // Every branch: the task branches and whichever base branches they started from.
    tips = await tipsOf(repo, ['refs/heads/']);
    open = unmergedPeers(store, null, repo, tips);
  } catch {
    return;
  }
  for (const task of open) {
    try {
      const subject = { repo, runId: task.runId, branch: task.branch, baseCommit: task.baseCommit, baseBranch: task.baseBranch };
      const record = await computeOverlap(subject, open.filter((peer) => peer !== task), task.record, tips);
      await writeOverlap(store.runDir(task.runId), record);
      // The later looks see it as this task's last record, as they would have read it from its file.
      task.record = record;
    } catch {
      // A warning worked out later is worth less than the landing: the task's next iteration tries again.
    }
  }
}

/** An open task of the store, as a peer of the others, with the base branch it started from. */
interface OpenTask extends OverlapPeer {
  baseBranch: string | null;
}

/**
 * The other tasks of the store (every one when `runId` is null) with a branch in the same repository that is
 * neither merged nor discarded. Only the runs git still has an `obra/` branch for are read (a store of thousands
 * of ended runs costs nothing more).
 */
function unmergedPeers(store: RunStore, runId: string | null, repo: string, tips: Map<string, string>): OpenTask[] {
  const peers: OpenTask[] = [];
  for (const ref of tips.keys()) {
    const branch = ref.slice('refs/heads/'.length);
    const other = branch.slice('obra/'.length);
    if (!branch.startsWith('obra/') || other === runId || !/^[A-Za-z0-9_-]+$/.test(other)) continue;
    try {
      const file = store.peekStatus(other).file;
      const space = file.queue?.workspace;
      if (space?.kind !== 'worktree' || space.repo !== repo || space.branch !== branch || file.queue?.merged || file.queue?.discarded) continue;
      peers.push({ runId: other, branch, baseCommit: space.baseCommit, baseBranch: space.baseBranch, record: readOverlap(store.runDir(other)) });
    } catch {
      // Another store's branch, or a run that cannot be read: not this store's to warn about.
    }
  }
  return peers;
}

export type OverlapConflict = StatusLine['conflicts'][number];

/** A task as the warnings need it: its branch, whether it is still unmerged, and its last record. */
export interface OverlapTask {
  runId: string;
  branch: string | null;
  /** Neither merged nor discarded. */
  open: boolean;
  record: OverlapRecord | null;
}

/**
 * Each open task's conflicts: with its base branch, and with each other open task — both tasks of a pair are
 * warned, from whichever of the two records looked at the pair last.
 */
export function conflictsOf(tasks: OverlapTask[]): Map<string, OverlapConflict[]> {
  type View = { other: string; entry: OverlapRecord['others'][number]; at: string };
  const byId = new Map(tasks.map((t) => [t.runId, t]));
  // What the others' records say of each task, gathered once: a look at the store stays linear in its records.
  const seenBy = new Map<string, View[]>();
  for (const other of tasks) {
    for (const entry of other.record?.others ?? []) {
      const views = seenBy.get(entry.runId) ?? [];
      views.push({ other: other.runId, entry, at: other.record!.computedAt });
      seenBy.set(entry.runId, views);
    }
  }
  const out = new Map<string, OverlapConflict[]>();
  for (const task of tasks) {
    if (!task.open || !task.record) continue;
    const found: OverlapConflict[] = [];
    if (task.record.baseConflicts.length && task.record.baseBranch) found.push({ with: 'base', runId: null, branch: task.record.baseBranch, files: task.record.baseConflicts });
    const seen = new Set<string>();
    const views: View[] = [...task.record.others.map((entry) => ({ other: entry.runId, entry, at: task.record!.computedAt })), ...(seenBy.get(task.runId) ?? [])];
    // The latest view of each pair decides.
    views.sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));
    for (const view of views) {
      if (seen.has(view.other)) continue;
      seen.add(view.other);
      const other = byId.get(view.other);
      if (!other?.open || !view.entry.conflicts.length) continue;
      found.push({ with: 'task', runId: other.runId, branch: other.branch ?? branchOf(other.runId), files: view.entry.conflicts });
    }
    if (found.length) out.set(task.runId, found);
  }
  return out;
}

/** `conflicts with run X (obra/X) in a.txt, b.txt` / `conflicts with main in a.txt`. */
export function conflictText(conflict: OverlapConflict): string {
  const files = conflict.files.length > 5 ? `${conflict.files.slice(0, 5).join(', ')}, … (${conflict.files.length} files)` : conflict.files.join(', ');
  return conflict.with === 'base' ? `conflicts with ${conflict.branch} in ${files}` : `conflicts with run ${conflict.runId} (${conflict.branch}) in ${files}`;
}

/** One task's conflicts (`obra show`): its record and those of the store's other open worktree tasks that have one. */
export function conflictsOfRun(store: RunStore, runId: string): OverlapConflict[] {
  const tasks: OverlapTask[] = [];
  for (const id of store.listRunIds()) {
    const record = readOverlap(store.runDir(id));
    if (!record && id !== runId) continue;
    try {
      const queue = store.peekStatus(id).file.queue;
      if (queue?.workspace.kind !== 'worktree') continue;
      tasks.push({ runId: id, branch: queue.workspace.branch, open: !queue.merged && !queue.discarded, record });
    } catch {
      // Unreadable: `obra runs` names it.
    }
  }
  return conflictsOf(tasks).get(runId) ?? [];
}
