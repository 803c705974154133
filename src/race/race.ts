import { closeSync, fdatasyncSync, linkSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../core/errors.js';
import type { RunStatus } from '../core/statuses.js';
import { raceFileAdvice, raceFileSchema, type RaceFile } from '../persisted/race-file.js';
import type { RunFile } from '../persisted/run-file.js';
import { DurableJsonFile, storeIoError, syncDirectory } from '../store/durable-file.js';
import type { RunStore } from '../store/run-store.js';
import { attemptEnded, attemptRunId, evidenceFrom, raceDecisionOf } from './decision.js';
import type { AttemptEvidence } from './rank.js';

/**
 * A race in the store: its attempts are the runs `<raceId>-1` … `<raceId>-<n>` (each a queued task of its own,
 * its queue entry naming the race), and once the last has ended its decision is `races/<raceId>.json`.
 * `decideRace` is idempotent: called after every attempt's end and by every worker when it starts, it writes the
 * decision at most once (exclusive create), so a worker killed at any point neither loses nor doubles it.
 */


const racePath = (store: RunStore, raceId: string) => join(store.dir, 'races', `${raceId}.json`);

/** The recorded decision, or null (not decided yet). */
export function readRaceDecision(store: RunStore, raceId: string): RaceFile | null {
  return new DurableJsonFile(racePath(store, raceId), raceFileSchema, raceFileAdvice, store.fs).read();
}

/** The race's attempts as the store has them (run file and status), in attempt order; null when `raceId` names no race. */
export function raceAttempts(store: RunStore, raceId: string): { runId: string; file: RunFile; status: RunStatus }[] | null {
  let first: { file: RunFile; status: RunStatus };
  try {
    first = store.peekStatus(attemptRunId(raceId, 1));
  } catch {
    return null;
  }
  const race = first.file.queue?.race;
  if (race?.id !== raceId) return null;
  const attempts = [{ runId: attemptRunId(raceId, 1), ...first }];
  for (let n = 2; n <= race.of; n++) {
    const runId = attemptRunId(raceId, n);
    attempts.push({ runId, ...store.peekStatus(runId) });
  }
  return attempts;
}

/** What an ended attempt left to be ranked by (read from the store). */
export function evidenceOf(store: RunStore, runId: string, attempt: number): AttemptEvidence {
  const handle = store.openRun(runId);
  try {
    const file = handle.file;
    return evidenceFrom({ runId, attempt, agent: file.agent.kind ?? file.agent.name, status: handle.effectiveStatus(), records: handle.readIterations() });
  } finally {
    handle.close();
  }
}

/**
 * The race's decision: the one recorded, or — when every attempt has ended — made now and recorded (`fresh`:
 * this call wrote it, so this caller tells of it). Null while an attempt still runs or waits.
 */
export function decideRace(store: RunStore, raceId: string): { decision: RaceFile; fresh: boolean } | null {
  const recorded = readRaceDecision(store, raceId);
  if (recorded) return { decision: recorded, fresh: false };
  const attempts = raceAttempts(store, raceId);
  if (!attempts || !attempts.every((a) => attemptEnded(a.status))) return null;
  const decision = raceDecisionOf(raceId, attempts.map((a) => evidenceOf(store, a.runId, a.file.queue!.race!.attempt)), new Date().toISOString());
  if (createExclusively(store, racePath(store, raceId), JSON.stringify(decision))) return { decision, fresh: true };
  return { decision: readRaceDecision(store, raceId)!, fresh: false };
}

/**
 * What `obra diff` and `obra merge` act on when given a race: its winner's run id. A run id is returned as it
 * is. A race not decided yet, or with no winner, is refused in one line.
 */
export function resolveRaceWinner(store: RunStore, id: string): string {
  const attempts = raceAttempts(store, id);
  if (!attempts) return id;
  const decided = decideRace(store, id);
  if (!decided) {
    const left = attempts.filter((a) => !attemptEnded(a.status)).map((a) => `${a.runId} (${a.status})`);
    throw new UserError(`race ${id} is not decided yet: ${left.join(', ')} ${left.length === 1 ? 'has' : 'have'} not ended — \`obra status\` shows the race; or pick an attempt's run id`);
  }
  if (!decided.decision.winner) throw new UserError(`race ${id} has no winner: ${decided.decision.reasons[0]} — pick an attempt's run id if you want one anyway`);
  return decided.decision.winner;
}

/** Writes `path` whole, only if it does not exist: a finished, synced temp file linked into place. */
function createExclusively(store: RunStore, path: string, text: string): boolean {
  const dir = join(store.dir, 'races');
  const temp = `${path}.${process.pid}.tmp`;
  try {
    mkdirSync(dir, { recursive: true });
    const fd = openSync(temp, 'w');
    try {
      writeSync(fd, text);
      fdatasyncSync(fd);
    } finally {
      closeSync(fd);
    }
    linkSync(temp, path);
    syncDirectory(dir, store.fs);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw storeIoError(error, path, 'record the race decision in');
  } finally {
    rmSync(temp, { force: true });
  }
}
