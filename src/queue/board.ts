import { join } from 'node:path';
import { columnOf, inQueueOrder, type StatusLine } from '../core/status-line.js';
import { isFinalStatus, type RunStatus } from '../core/statuses.js';
import { runningIterationOf, taskContextOf, taskStateOf, usageLimitWaitOf } from '../persisted/snapshot.js';
import type { RaceFile } from '../persisted/race-file.js';
import { raceMarkOf } from '../race/decision.js';
import { readRaceDecision } from '../race/race.js';
import { RunStore, type RunTotals } from '../store/run-store.js';
import { StampedCache } from '../store/stamped-cache.js';
import { overlapPathOf, readOverlap } from '../store/overlap-file.js';
import type { OverlapRecord } from '../persisted/overlap.js';
import { conflictsOf, type OverlapTask } from './overlap.js';

/**
 * The store's tasks as `obra status` and the viewer's board show them: one line each — status, where its
 * statecharts are, its iteration, the last decision, the cost, what it waits for, its age — and the board's
 * column. Read from each run's small file and the end of its journal, never written.
 */

/** A task's line: the one status shape of both engines (see src/core/status-line.ts). */
export type TaskLine = StatusLine;
export { BOARD_COLUMNS, columnOf, type BoardColumn } from '../core/status-line.js';

/** The store's tasks, one line each, read once (`obra status`). */
export function taskLines(storeDir: string, now = Date.now()): TaskLine[] {
  return new TaskLineReader(storeDir).lines(now);
}

/** A run's line as read from its files, and what it waits on that its files do not say. */
export interface ReadLine {
  line: TaskLine;
  fileStatus: RunStatus;
  after: string | null;
  /** Its branch's overlap with the base and the other branches (a worktree task's), or null. */
  overlap: OverlapRecord | null;
}

/**
 * `taskLines` for a process that reads them again and again (`obra status --watch`, the board): a run's line is
 * read again only when its run.json or its journal changed (see StampedCache). A run whose file says running is
 * read at every look (its status also depends on whether the process in its lock lives). What a queued task
 * waits for is worked out at every look: it depends on the run it follows.
 */
export class TaskLineReader {
  private readonly store: RunStore;
  private readonly known: StampedCache<ReadLine>;
  private readonly ranking: RaceRanking;

  constructor(storeDir: string, clock: { now?: () => number } = {}) {
    this.store = RunStore.open(storeDir, { create: false });
    this.known = new StampedCache(clock.now);
    this.ranking = new RaceRanking(this.store);
  }

  lines(now = Date.now()): TaskLine[] {
    const ids = this.store.listRunIds();
    this.known.keepOnly(ids);
    // Many tasks may follow one run: its status is read once a look.
    const followed = new Map<string, RunStatus | null>();
    const statusOf = (runId: string) => {
      if (!followed.has(runId)) {
        let status: RunStatus | null = null;
        try {
          status = this.store.peekStatus(runId).status;
        } catch {
          // Unreadable (deleted?): said so in the follower's line.
        }
        followed.set(runId, status);
      }
      return followed.get(runId)!;
    };
    const overlaps: OverlapTask[] = [];
    const lines = ids.map((runId): TaskLine => {
      try {
        const known = this.read(runId);
        if (known.line.branch) overlaps.push({ runId, branch: known.line.branch, open: known.line.branchOutcome === null, record: known.overlap });
        return { ...known.line, waitingFor: waitingNow(known, statusOf), ageMs: now - Date.parse(known.line.createdAt) };
      } catch (error) {
        this.known.delete(runId);
        return { runId, task: '?', status: 'unreadable', branchOutcome: null, state: null, iteration: 0, lastDecision: null, costUsd: 0, waitingFor: null, reason: (error as Error).message, priority: 0, after: null, createdAt: '', ageMs: 0, column: 'failed', branch: null, mergedInto: null, worker: null, agent: null, usage: null, race: null, resolves: null, resolvedBy: null, conflicts: [] };
      }
    });
    // In the order the workers take them (a list of ended runs keeps the same order too).
    return inQueueOrder(withConflicts(lines, overlaps).map((line) => this.ranking.rank(line)));
  }

  private read(runId: string): ReadLine {
    const dir = this.store.runDir(runId);
    const files = [{ path: join(dir, 'run.json') }, { path: join(dir, 'journal.jsonl'), optional: true }, { path: overlapPathOf(dir), optional: true }];
    return this.known.get(runId, files, () => lineOf(this.store, runId), (read) => read.fileStatus !== 'running');
  }
}

/** What a task waits for now: a queued one, the run it follows; a done one, the run resolving its conflict. */
export function waitingNow(read: Pick<ReadLine, 'line' | 'after'>, statusOf: (runId: string) => RunStatus | null): string | null {
  const { line } = read;
  if (line.status === 'queued') return queuedWait(read.after, statusOf);
  // A done task whose landing waits for the run resolving its conflict (its status changes without this run's files).
  if (line.resolvedBy && !line.mergedInto && line.status === 'done') return resolutionWait(line.runId, line.resolvedBy, statusOf(line.resolvedBy));
  return line.waitingFor;
}

/** The lines with their branch's conflicts: both tasks of a conflicting pair are warned, whichever of the two found it. */
export function withConflicts<T extends TaskLine>(lines: T[], overlaps: OverlapTask[]): T[] {
  const conflicts = conflictsOf(overlaps);
  return conflicts.size ? lines.map((line) => (conflicts.has(line.runId) ? { ...line, conflicts: conflicts.get(line.runId)! } : line)) : lines;
}

/** Race attempts' places in their race, once decided (a recorded decision never changes: read once). */
export class RaceRanking {
  private readonly decisions = new Map<string, RaceFile>();

  constructor(private readonly store: RunStore) {}

  rank<T extends TaskLine>(line: T): T {
    if (!line.race) return line;
    let decision = this.decisions.get(line.race.id);
    if (!decision) {
      try {
        decision = readRaceDecision(this.store, line.race.id) ?? undefined;
      } catch {
        // An unreadable decision: the attempts show undecided (`obra diff` of the race names the file).
      }
      if (!decision) return line;
      this.decisions.set(line.race.id, decision);
    }
    const { id, attempt, of } = line.race;
    const mark = raceMarkOf({ id, attempt, of }, line.runId, decision);
    return mark.decided ? { ...line, race: mark } : line;
  }
}

/** A queued task's `waitingFor`, given how the runs it may follow stand. */
export { queuedWait };

/** One run's line, read from its files now (the board's index keeps these and reads a run again when it changes). */
export function lineOf(store: RunStore, runId: string): ReadLine {
  // One read of run.json: its record, status and totals, and the journal's last snapshot.
  const handle = store.openRun(runId);
  let latest: unknown;
  let status: RunStatus;
  let totals: RunTotals;
  const file = handle.file;
  try {
    status = handle.effectiveStatus();
    totals = handle.totals();
    latest = handle.journal.latest().entry?.snapshot ?? null;
  } finally {
    handle.close();
  }
  const { iterations, totalCostUsd, usage } = totals;
  const context = taskContextOf(latest);
  const iteration = runningIterationOf(latest);
  const taskState = taskStateOf(latest);
  const state = !latest ? (status === 'queued' ? 'queued' : null) : iteration && iteration.status === 'active' ? `${taskState} / ${iteration.state}` : (taskState ?? null);
  const space = file.queue?.workspace;
  const worktree = space?.kind === 'worktree';
  const line: TaskLine = {
    runId,
    task: file.task.text,
    status,
    // Where `obra merge` and `obra discard` record what they did.
    branchOutcome: worktree && file.queue?.merged ? 'merged' : worktree && file.queue?.discarded ? 'discarded' : null,
    state,
    iteration: iteration?.index ?? iterations,
    lastDecision: typeof context.lastDecision === 'string' ? context.lastDecision : null,
    costUsd: totalCostUsd,
    // A queued task's is worked out at every look (see queuedWait).
    waitingFor: status === 'queued' ? null : waitingFor(status, latest, file.reason),
    reason: file.reason || null,
    priority: file.queue?.priority ?? 0,
    after: file.queue?.after ?? null,
    // As the workers order the queue (src/queue/worker.ts).
    createdAt: file.queue?.submittedAt ?? file.createdAt,
    ageMs: 0,
    column: columnOf(status),
    branch: worktree && !file.queue?.discarded ? space.branch : null,
    mergedInto: worktree && file.queue?.merged ? `${space.baseBranch} @ ${file.queue.merged.commit.slice(0, 8)}` : null,
    worker: null,
    agent: file.agent.kind ?? file.agent.name,
    usage,
    race: file.queue?.race ? raceMarkOf(file.queue.race, runId, null) : null,
    resolves: file.queue?.resolves?.runId ?? null,
    resolvedBy: file.queue?.resolution?.runId ?? null,
    conflicts: [],
  };
  const overlap = worktree ? readOverlap(store.runDir(runId)) : null;
  return { line, fileStatus: file.status, after: file.queue?.after ?? null, overlap };
}

/** What a done task waits for while a run resolves its conflict: that run, then `obra merge` (or a new resolution). */
function resolutionWait(runId: string, resolvedBy: string, status: RunStatus | null): string {
  if (status === 'done') return `\`obra merge ${runId}\` (run ${resolvedBy} resolved its conflict)`;
  if (status === null || isFinalStatus(status)) return `\`obra merge --resolve ${runId}\` again (run ${resolvedBy}, which resolved its conflict, ${status ? `ended ${status}` : 'cannot be read'})`;
  return `run ${resolvedBy} (${status}) to resolve its conflict`;
}

/** What a queued task waits for: the run it follows to be done, or a worker. */
function queuedWait(after: string | null, statusOf: (runId: string) => RunStatus | null): string {
  if (after) {
    const followed = statusOf(after);
    if (followed === null) return `run ${after}, which cannot be read`;
    if (followed !== 'done') return `run ${after} (${followed}) to be done`;
  }
  return 'a worker (`obra work`)';
}

function waitingFor(status: RunStatus, latest: unknown, reason: string): string | null {
  switch (status) {
    case 'escalated':
      return `a human: ${short(String(taskContextOf(latest).question ?? reason))}`;
    case 'paused':
      return '`obra resume`';
    case 'interrupted':
      return '`obra work` or `obra resume` (its process is gone)';
    case 'blocked':
      return null;
    case 'running': {
      const limit = usageLimitWaitOf(latest);
      if (limit) return `the usage limit${limit.limitType ? ` (${limit.limitType})` : ''} to reset, until ${clock(limit.dueAt)}`;
      const iteration = runningIterationOf(latest);
      if (iteration?.state === 'retryingSessionLock') {
        const due = iteration.context.retryDueAt;
        const wait = iteration.context.wait as { kind?: string; shared?: boolean } | undefined;
        const what = wait?.kind === 'rateLimited' ? (wait.shared ? 'the account\'s rate-limit wait' : 'the API (rate limited)') : 'its session to be free';
        return typeof due === 'number' ? `${what}, until ${clock(due)}` : what;
      }
      if (iteration?.state === 'awaitingAgent') return 'the agent';
      return null;
    }
    default:
      return null;
  }
}

const short = (text: string) => (text.length > 80 ? `${text.slice(0, 79)}…` : text);
const clock = (ms: number) => new Date(ms).toISOString().slice(11, 19) + ' UTC';
