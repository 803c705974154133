import { columnOf, inQueueOrder, type StatusLine } from '../../core/status-line.js';
import type { RaceFile } from '../../persisted/race-file.js';
import { raceMarkOf } from '../../race/decision.js';
import type { QueueLine } from './model.js';

/**
 * Restate's queue lines as `obra status --engine restate` shows them: the status shape of both engines. What its
 * queue does not keep (the statecharts' state, the last decision, a worktree branch) is null. A race's attempts
 * are ranked by its decision (`decisions`, by race id: ObraRace's), once there is one.
 */
export function statusLinesOf(queue: QueueLine[], now = Date.now(), decisions: ReadonlyMap<string, RaceFile> = new Map()): StatusLine[] {
  const statusOf = new Map(queue.map((line) => [line.runId, line.status]));
  return inQueueOrder(queue.map((line) => statusLineOf(line, now, (runId) => statusOf.get(runId) ?? null, decisions)));
}

export function statusLineOf(line: QueueLine, now: number, statusOf: (runId: string) => string | null = () => null, decisions: ReadonlyMap<string, RaceFile> = new Map()): StatusLine {
  return {
    runId: line.runId,
    task: line.task,
    status: line.status,
    branchOutcome: null,
    state: null,
    iteration: line.iterations,
    lastDecision: null,
    costUsd: line.totalCostUsd,
    waitingFor: waitingFor(line, now, statusOf),
    reason: line.reason || null,
    priority: line.priority,
    after: line.after,
    createdAt: line.submittedAt,
    ageMs: now - Date.parse(line.submittedAt),
    column: columnOf(line.status),
    branch: null,
    mergedInto: null,
    worker: line.worker,
    agent: line.agent ?? null,
    usage: line.usage ?? null,
    race: line.race ? raceMarkOf(line.race, line.runId, decisions.get(line.race.id)) : null,
    resolves: null,
    resolvedBy: null,
    conflicts: [],
  };
}

function waitingFor(line: QueueLine, now: number, statusOf: (runId: string) => string | null): string | null {
  switch (line.status) {
    case 'queued': {
      if (line.wakeAt && line.wakeAt > now) return `the usage limit to reset, until ${new Date(line.wakeAt).toISOString().slice(11, 19)} UTC`;
      const followed = line.after ? statusOf(line.after) : 'done';
      if (followed !== 'done') return `run ${line.after} (${followed ?? 'not listed'}) to be done`;
      return 'a worker (`obra worker`)';
    }
    case 'escalated':
      return `a human: ${line.reason.length > 80 ? `${line.reason.slice(0, 79)}…` : line.reason}`;
    case 'paused':
      return '`obra resume`';
    case 'interrupted':
      return 'a worker to take it back (`obra worker`)';
    default:
      return null;
  }
}
