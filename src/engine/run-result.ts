import type { IterationRecord, PermissionDenial, RunStatus, TaskSpec, TokenUsage, UsageLimit } from '../core/types.js';
import { usageOfRecords, type UsageTotals } from '../core/usage-totals.js';
import { grantedRulesOf, usageLimitWaitOf } from '../persisted/snapshot.js';

/** One iteration as `obra run --json`, `obra show --json` and the library report it. */
export interface IterationView {
  index: number;
  states: string[];
  attempts: number;
  retryDelaysMs: number[];
  sessionId: string;
  decision: string;
  decisionRule: string;
  reason: string;
  quality: number | null;
  confidence: number | null;
  qualityBreakdown: Record<string, number>;
  confidenceExplanation: string[];
  validation: { ok: boolean; reasons: string[]; codes: string[] } | null;
  checks: { command: string; exitCode: number | null; durationMs: number }[];
  costUsd: number;
  durationMs: number;
  answerChars: number;
  failure: string | null;
  /** Tool uses the agent was refused in this iteration. */
  permissionDenials: PermissionDenial[];
  /** The iteration's call was cut by a crash and recovered from the session (adopted or continued), or null. */
  recovered: { how: 'adopted' | 'continued'; note: string } | null;
  /** Its agent call's tokens and cost, as the CLI reported them or estimated (null: none reported). */
  tokens: TokenUsage | null;
}

export interface RunResult {
  runId: string;
  status: RunStatus;
  reason: string;
  task: string;
  workdir: string;
  sessionId: string | null;
  iterations: IterationView[];
  totalCostUsd: number;
  /** The question waiting for a human (status `escalated`). */
  question: string | null;
  store: string;
  /** Permission rules a person granted for the rest of the run (`obra answer --allow`). */
  granted: string[];
  /** What the run waits for by itself, when it does: the account's usage limit, until `dueAt` (epoch ms). */
  waiting: (UsageLimit & { kind: 'usageLimit'; dueAt: number }) | null;
  /** The agent kind that drove it (`claude`, `codex`, ...), or the in-process agent's name; null when unknown. */
  agent: string | null;
  /** Its tokens and cost summed over the iterations (`estimated`: some cost from `agent.prices`). */
  usage: UsageTotals;
}

export function viewOf(record: IterationRecord): IterationView {
  return {
    index: record.index,
    states: record.states,
    attempts: record.attempts,
    retryDelaysMs: record.retryDelaysMs,
    sessionId: record.sessionId,
    decision: record.decision,
    decisionRule: record.decisionRule,
    reason: record.reason,
    quality: record.quality,
    confidence: record.confidence,
    qualityBreakdown: record.qualityBreakdown,
    confidenceExplanation: record.confidenceExplanation,
    validation: record.validation ? { ok: record.validation.ok, reasons: record.validation.reasons, codes: record.validation.codes } : null,
    checks: record.checks.map((c) => ({ command: c.command, exitCode: c.exitCode, durationMs: c.durationMs })),
    costUsd: record.costUsd,
    durationMs: record.finishedAt - record.startedAt,
    answerChars: record.validation?.answer?.length ?? 0,
    recovered: record.agent?.recovered ?? null,
    tokens: record.agent?.tokens ?? null,
    failure: record.failure,
    permissionDenials: record.permissionDenials ?? [],
  };
}

/** A run's result from what any host keeps of it: its record's fields, its iteration records, its latest snapshot. */
export function resultFrom(run: {
  runId: string;
  status: RunStatus;
  reason: string;
  task: Pick<TaskSpec, 'text' | 'workdir'>;
  sessionId: string | null;
  question: string | null;
  store: string;
  records: IterationRecord[];
  /** The latest persisted snapshot (what was granted, what the run waits for), or null. */
  latest: unknown;
  /** The agent as the run's record names it. */
  agent?: { name: string; kind?: string } | null;
}): RunResult {
  const waiting = usageLimitWaitOf(run.latest);
  const usage = usageOfRecords(run.records);
  return {
    runId: run.runId,
    status: run.status,
    reason: run.reason,
    task: run.task.text,
    workdir: run.task.workdir,
    sessionId: run.sessionId,
    iterations: run.records.map(viewOf),
    totalCostUsd: usage.costUsd,
    question: run.question,
    store: run.store,
    granted: grantedRulesOf(run.latest),
    waiting: waiting ? { kind: 'usageLimit', ...waiting } : null,
    agent: run.agent ? (run.agent.kind ?? run.agent.name) : null,
    usage,
  };
}
