import type { AgentKind } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import { attemptRunId } from './decision.js';

/**
 * A task given to several agents (`--agents claude,codex`) or several times (`--attempts 3`) becomes one queued
 * task per attempt, each with the run id `<raceId>-<n>` and its queue entry naming the race.
 */

/** The most attempts one race may have. */
export const MAX_ATTEMPTS = 16;

export interface RaceSpec {
  /** One attempt per agent (times `attempts`). */
  agents?: AgentKind[];
  /** Attempts per agent (default 1); with no `agents`, of the task's own agent. */
  attempts?: number;
}

export interface RaceMember {
  id: string;
  attempt: number;
  of: number;
}

/**
 * Expands the races of a batch: every other task is kept as it is, and `after: @n` (the n-th task of the batch)
 * is renumbered. A task may follow a race's task only by an attempt's run id, not by its place in the batch.
 */
export function expandRaces<T extends RaceSpec & { runId?: string; agentKind?: AgentKind; after?: string }>(
  tasks: T[],
  newId: () => string,
): { tasks: (Omit<T, 'agents' | 'attempts'> & { race?: RaceMember })[]; races: { raceId: string; runIds: string[] }[] } {
  const firstIndex: number[] = [];
  const races: { raceId: string; runIds: string[] }[] = [];
  const out: (Omit<T, 'agents' | 'attempts'> & { race?: RaceMember })[] = [];
  const isRace: boolean[] = [];
  for (const [i, t] of tasks.entries()) {
    const where = tasks.length > 1 ? `task ${i + 1}: ` : '';
    const { agents, attempts, ...rest } = t;
    firstIndex.push(out.length);
    const perAgent = attempts ?? 1;
    if (!Number.isInteger(perAgent) || perAgent < 1) throw new UserError(`${where}--attempts must be a whole number of at least 1, got ${attempts}`);
    if (agents !== undefined && !agents.length) throw new UserError(`${where}--agents names no agent — list them, e.g. --agents claude,codex`);
    const kinds = (agents ?? [t.agentKind]).flatMap((kind) => Array.from({ length: perAgent }, () => kind));
    isRace.push(kinds.length > 1);
    if (kinds.length === 1) {
      out.push({ ...rest, ...(agents ? { agentKind: agents[0] } : {}) });
      continue;
    }
    if (kinds.length > MAX_ATTEMPTS) throw new UserError(`${where}a race of ${kinds.length} attempts is too many (at most ${MAX_ATTEMPTS}) — fewer --agents or --attempts`);
    const raceId = t.runId ?? newId();
    const runIds = kinds.map((_, n) => attemptRunId(raceId, n + 1));
    races.push({ raceId, runIds });
    kinds.forEach((kind, n) => out.push({ ...rest, runId: runIds[n]!, ...(kind ? { agentKind: kind } : {}), race: { id: raceId, attempt: n + 1, of: kinds.length } }));
  }
  for (const t of out) {
    if (t.after === undefined || !/^@\d+$/.test(t.after)) continue;
    const target = Number(t.after.slice(1)) - 1;
    if (target < 0 || target >= tasks.length) continue; // submit names the bad reference
    if (isRace[target]) throw new UserError(`after: ${t.after} names a race (task ${target + 1}) — a task can follow one run, not a race: follow an attempt's run id once the race is decided`);
    t.after = `@${firstIndex[target]! + 1}`;
  }
  return { tasks: out, races };
}
