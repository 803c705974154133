import type { RaceMark } from '../core/status-line.js';
import { isFinalStatus, type RunStatus } from '../core/statuses.js';
import type { IterationRecord } from '../core/types.js';
import { usageOfRecords } from '../core/usage-totals.js';
import { RACE_FILE_VERSION, type RaceFile } from '../persisted/race-file.js';
import type { RaceMember } from './race-submit.js';
import { rankAttempts, whyBehind, type AttemptEvidence } from './rank.js';

/**
 * A race's decision from its attempts, the same on both engines (pure: the local store's files and Restate's
 * objects each read the attempts, then come here).
 */

/** The run id of a race's attempt (1-based). */
export const attemptRunId = (raceId: string, attempt: number) => `${raceId}-${attempt}`;

/** An attempt has ended for the race once nothing drives it by itself any more (one waiting for a person too). */
export const attemptEnded = (status: RunStatus) => isFinalStatus(status) || status === 'escalated';

/** What an ended attempt left to be ranked by: from its iteration records, its status and its agent. */
export function evidenceFrom(attempt: { runId: string; attempt: number; agent: string; status: string; records: readonly IterationRecord[] }): AttemptEvidence {
  const { records } = attempt;
  const last = records.at(-1);
  const checked = [...records].reverse().find((r) => r.checks.length);
  const usage = usageOfRecords(records);
  return {
    runId: attempt.runId,
    attempt: attempt.attempt,
    agent: attempt.agent,
    status: attempt.status,
    checksPassed: checked ? checked.checks.filter((c) => c.exitCode === 0).length : 0,
    checksTotal: checked?.checks.length ?? 0,
    judge: typeof last?.qualityBreakdown.judge === 'number' ? last.qualityBreakdown.judge : null,
    quality: last?.quality ?? null,
    confidence: last?.confidence ?? null,
    costUsd: usage.costUsd,
    costEstimated: usage.estimated,
    durationMs: records.length ? records.at(-1)!.finishedAt - records[0]!.startedAt : 0,
  };
}

/** The decision made from the ended attempts' evidence (in any order), as it is recorded. */
export function raceDecisionOf(raceId: string, evidence: readonly AttemptEvidence[], decidedAt: string): RaceFile {
  const ranking = rankAttempts(evidence);
  return { version: RACE_FILE_VERSION, raceId, decidedAt, ranked: ranking.ranked, winner: ranking.winner, reasons: ranking.reasons };
}

/**
 * An attempt's place in its race as `obra status` and the board show it: its rank, whether it won, and why —
 * the winner's reasons, or why it ranks behind the attempt just before it. Undecided until there is a decision.
 */
export function raceMarkOf(member: RaceMember, runId: string, decision: RaceFile | null | undefined): RaceMark {
  const undecided: RaceMark = { ...member, decided: false, rank: null, winner: false, why: null };
  const at = decision ? decision.ranked.findIndex((e) => e.runId === runId) : -1;
  if (!decision || at < 0) return undecided;
  const winner = decision.winner === runId;
  const why = winner ? decision.reasons.join('; ') : at === 0 ? decision.reasons[0]! : whyBehind(decision.ranked[at - 1]!, decision.ranked[at]!);
  return { ...member, decided: true, rank: at + 1, winner, why };
}
