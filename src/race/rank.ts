/**
 * How a race's attempts are ranked: pure, from the evidence each attempt left (src/race/evidence.ts reads it).
 * The order, each criterion deciding only when every one before it ties:
 *
 *   1. ended `done` first (only a `done` attempt can win);
 *   2. more of its checks passing (the last iteration that ran checks; an attempt with none after those with some);
 *   3. the LLM judge's verdict, higher first (when the judge is configured; one without a verdict after one with);
 *   4. quality, higher first (to 2 decimals);
 *   5. confidence, higher first (to 2 decimals);
 *   6. cost, lower first (to a hundredth of a cent);
 *   7. time, shorter first (to a tenth of a second);
 *   8. the attempt's number, lower first (the tie-break that never ties).
 *
 * The winner is the first attempt when it ended `done`; else there is none. The reasons say, for every other
 * attempt, the first criterion on which the winner beat it.
 */

export interface AttemptEvidence {
  runId: string;
  attempt: number;
  /** The agent kind that drove it. */
  agent: string;
  status: string;
  /** Of the last iteration that ran checks (both 0 when none did). */
  checksPassed: number;
  checksTotal: number;
  /** The LLM judge's score of the last iteration, or null (no judge, or it gave none). */
  judge: number | null;
  quality: number | null;
  confidence: number | null;
  costUsd: number;
  /** Some of the cost is an estimate from `agent.prices`. */
  costEstimated: boolean;
  /** From its first iteration's start to its last one's end. */
  durationMs: number;
}

export interface Ranking {
  /** Best first. */
  ranked: AttemptEvidence[];
  /** The winner's run id, or null when no attempt ended done. */
  winner: string | null;
  /** Why the winner won (one line per other attempt), or why there is no winner. */
  reasons: string[];
}

interface Criterion {
  /** Negative when `a` ranks before `b`. */
  compare(a: AttemptEvidence, b: AttemptEvidence): number;
  /** Why `a` ranks before `b` on this criterion. */
  why(a: AttemptEvidence, b: AttemptEvidence): string;
}

const checkShare = (e: AttemptEvidence) => (e.checksTotal ? e.checksPassed / e.checksTotal : -1);
/** Higher first, to `places` decimals; a missing score after any score, two missing ones tie. */
function higherFirst(a: number | null, b: number | null, places: number): number {
  if (a === null || b === null) return Number(a === null) - Number(b === null);
  return round(b, places) - round(a, places);
}
const round = (n: number, places: number) => Math.round(n * 10 ** places);
const score = (n: number | null) => (n === null ? 'none' : n.toFixed(2));
const money = (e: AttemptEvidence) => `${e.costEstimated ? '~' : ''}$${e.costUsd.toFixed(4)}`;
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const checks = (e: AttemptEvidence) => (e.checksTotal ? `${e.checksPassed}/${e.checksTotal}` : 'none run');

export const RANKING_CRITERIA: readonly (Criterion & { name: string })[] = [
  { name: 'ended done', compare: (a, b) => Number(b.status === 'done') - Number(a.status === 'done'), why: (_a, b) => `ended done (against ${b.status})` },
  { name: 'checks passed', compare: (a, b) => checkShare(b) - checkShare(a), why: (a, b) => `more checks passed (${checks(a)} against ${checks(b)})` },
  { name: "judge's verdict", compare: (a, b) => higherFirst(a.judge, b.judge, 2), why: (a, b) => `a better verdict of the judge (${score(a.judge)} against ${score(b.judge)})` },
  { name: 'quality', compare: (a, b) => higherFirst(a.quality, b.quality, 2), why: (a, b) => `higher quality (${score(a.quality)} against ${score(b.quality)})` },
  { name: 'confidence', compare: (a, b) => higherFirst(a.confidence, b.confidence, 2), why: (a, b) => `higher confidence (${score(a.confidence)} against ${score(b.confidence)})` },
  { name: 'cost', compare: (a, b) => round(a.costUsd, 6) - round(b.costUsd, 6), why: (a, b) => `cheaper (${money(a)} against ${money(b)})` },
  { name: 'time', compare: (a, b) => round(a.durationMs, -2) - round(b.durationMs, -2), why: (a, b) => `faster (${seconds(a.durationMs)} against ${seconds(b.durationMs)})` },
  { name: 'attempt number', compare: (a, b) => a.attempt - b.attempt, why: (a, b) => `a tie on everything else: the earlier attempt (${a.attempt} before ${b.attempt})` },
];

/** The first criterion on which `a` and `b` differ, and the sign. */
function firstDifference(a: AttemptEvidence, b: AttemptEvidence): { criterion: Criterion; order: number } | null {
  for (const criterion of RANKING_CRITERIA) {
    const order = criterion.compare(a, b);
    if (order !== 0) return { criterion, order };
  }
  return null;
}

export function compareAttempts(a: AttemptEvidence, b: AttemptEvidence): number {
  return firstDifference(a, b)?.order ?? 0;
}

export function rankAttempts(attempts: readonly AttemptEvidence[]): Ranking {
  const ranked = [...attempts].sort(compareAttempts);
  const best = ranked[0];
  if (!best || best.status !== 'done') {
    return { ranked, winner: null, reasons: [`no attempt ended done (${ranked.map((e) => `attempt ${e.attempt} (${e.agent}) ${e.status}`).join(', ')}): nothing to merge`] };
  }
  const reasons = ranked.slice(1).map((other) => `beats attempt ${other.attempt} (${other.agent}, ${other.runId}): ${firstDifference(best, other)!.criterion.why(best, other)}`);
  return { ranked, winner: best.runId, reasons: reasons.length ? reasons : ['the only attempt'] };
}

/** Why `behind` ranks after `ahead` (an attempt's own line: against the one ranked just before it). */
export function whyBehind(ahead: AttemptEvidence, behind: AttemptEvidence): string {
  const difference = firstDifference(ahead, behind);
  return `behind attempt ${ahead.attempt} (${ahead.agent}): ${difference ? difference.criterion.why(ahead, behind) : 'a tie'}`;
}
