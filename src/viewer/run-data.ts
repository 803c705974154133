import { recoveredText } from '../logging/messages.js';
import type { IterationRecord } from '../core/types.js';
import { runningIterationOf, taskContextOf, taskStateOf, taskStatusOf, type IterationView } from '../persisted/snapshot.js';
import type { JournalEntry, RunHandle } from '../store/run-store.js';
import { machineGraphs } from '../graph/machine-export.js';

/**
 * What the viewer page steps through, built from a run's files: one step per journal line (a transition of
 * the task or iteration machine) with the states it left both machines in and what the iteration knew at that
 * moment (attempts, backoff, answer, validation, scores, decision), plus the finished iterations' records.
 * Long texts (answers, prompts) are kept once in `texts` and referred to by index.
 */

export interface ViewerRun {
  run: {
    runId: string;
    task: string;
    workdir: string;
    status: string;
    reason: string;
    createdAt: string;
    iterations: number;
    totalCostUsd: number;
    sessionId: string | null;
  };
  steps: ViewerStep[];
  iterations: ViewerIterationRecord[];
  texts: string[];
}

export interface ViewerStep {
  seq: number;
  at: number;
  /** Milliseconds since the first step. */
  elapsedMs: number;
  actor: string;
  event: string;
  /** The event in words: `callAgent done`, `after backoffDelay`, ... */
  eventLabel: string;
  /** What the event carried: the agent's outcome, the scores, the decision. */
  eventNote: string | null;
  task: { state: string; status: string; iterations: number; totalCostUsd: number; reason: string | null; question: string | null; feedback: string | null };
  iteration: ViewerIterationState | null;
}

export interface ViewerIterationState {
  index: number;
  state: string;
  /** The states this iteration went through so far, in order. */
  visited: string[];
  attempts: number;
  retryDelaysMs: number[];
  /** What was left of the backoff wait at this step (ms), while waiting. */
  retryRemainingMs: number | null;
  sessionId: string | null;
  sessionMode: string | null;
  outcome: string | null;
  outcomeMessage: string | null;
  /** How the call was recovered after a crash cut it (answer adopted, or continued), or null. */
  recovered: string | null;
  /** Index into `texts`. */
  answer: number | null;
  validation: { ok: boolean; reasons: string[] } | null;
  quality: number | null;
  qualityBreakdown: Record<string, number>;
  confidence: number | null;
  confidenceExplanation: string[];
  decision: string | null;
  decisionRule: string | null;
  decisionReason: string | null;
  failure: string | null;
}

export interface ViewerIterationRecord {
  index: number;
  decision: string;
  decisionRule: string;
  reason: string;
  quality: number | null;
  confidence: number | null;
  attempts: number;
  retryDelaysMs: number[];
  durationMs: number;
  costUsd: number;
  checks: { command: string; exitCode: number | null; durationMs: number }[];
  answer: number | null;
  prompt: number | null;
}

export function viewerRun(handle: RunHandle, status: string): ViewerRun {
  const file = handle.file;
  const texts: string[] = [];
  const textIndex = new Map<string, number>();
  const text = (value: unknown): number | null => {
    if (typeof value !== 'string' || value === '') return null;
    let index = textIndex.get(value);
    if (index === undefined) {
      index = texts.push(value) - 1;
      textIndex.set(value, index);
    }
    return index;
  };
  const journal = handle.readJournal();
  const records = handle.readIterations();
  const labels = eventLabeller();
  const first = journal[0]?.at ?? 0;
  let lastIteration: ViewerIterationState | null = null;
  const steps = journal.map((entry) => {
    const ctx = taskContextOf(entry.snapshot);
    const child = runningIterationOf(entry.snapshot);
    let iteration = child ? iterationState(child, entry, text) : null;
    // The iteration has finished and the task moved on: show it as complete.
    if (!iteration && lastIteration) iteration = { ...lastIteration, state: 'complete', retryRemainingMs: null, visited: [...lastIteration.visited.filter((s) => s !== 'complete'), 'complete'] };
    if (iteration) lastIteration = iteration;
    const step: ViewerStep = {
      seq: entry.seq,
      at: entry.at,
      elapsedMs: entry.at - first,
      actor: entry.actor,
      event: entry.event.type,
      eventLabel: labels(entry.event.type),
      eventNote: eventNote(entry.event),
      task: {
        state: taskStateOf(entry.snapshot) ?? '?',
        status: taskStatusOf(entry.snapshot),
        iterations: num(ctx.iterations) ?? 0,
        totalCostUsd: num(ctx.totalCostUsd) ?? 0,
        reason: str(ctx.reason),
        question: str(ctx.question),
        feedback: str(ctx.feedback),
      },
      iteration,
    };
    return step;
  });
  return {
    run: {
      runId: file.runId,
      task: file.task.text,
      workdir: file.task.workdir,
      status,
      reason: file.reason,
      createdAt: file.createdAt,
      iterations: file.iterations,
      totalCostUsd: file.totalCostUsd,
      sessionId: file.sessionId,
    },
    steps,
    iterations: records.map((r) => recordView(r, text)),
    texts,
  };
}

function iterationState(snapshot: IterationView, entry: JournalEntry, text: (v: unknown) => number | null): ViewerIterationState {
  const c = snapshot.context;
  const call = c.call as { outcome?: { kind?: string; message?: string; result?: { result?: string } }; sessionId?: string; mode?: string; recovered?: { how: 'adopted' | 'continued'; note: string } } | null | undefined;
  const validation = c.validation as { ok?: boolean; reasons?: string[] } | null | undefined;
  const quality = c.quality as { score?: number; breakdown?: Record<string, number> } | null | undefined;
  const confidence = c.confidence as { score?: number; explanation?: string[] } | null | undefined;
  const decision = c.decision as { decision?: string; rule?: string; reason?: string } | null | undefined;
  const state = snapshot.status === 'done' ? 'complete' : snapshot.state;
  const visited = Array.isArray(c.states) ? (c.states as string[]).slice() : [];
  if (visited.at(-1) !== state) visited.push(state);
  const dueAt = num(c.retryDueAt);
  return {
    index: num(c.index) ?? 0,
    state,
    visited,
    attempts: num(c.attempts) ?? 0,
    retryDelaysMs: Array.isArray(c.retryDelaysMs) ? (c.retryDelaysMs as number[]) : [],
    retryRemainingMs: state === 'retryingSessionLock' && dueAt !== null ? Math.max(0, dueAt - entry.at) : null,
    sessionId: call?.sessionId ?? str(c.sessionId),
    sessionMode: call?.mode ?? str(c.sessionMode),
    outcome: call?.outcome?.kind ?? null,
    outcomeMessage: call?.outcome?.message ?? null,
    recovered: call?.recovered ? `${recoveredText(call.recovered)} — ${call.recovered.note}` : null,
    answer: text(call?.outcome?.result?.result),
    validation: validation ? { ok: Boolean(validation.ok), reasons: validation.reasons ?? [] } : null,
    quality: quality?.score ?? null,
    qualityBreakdown: quality?.breakdown ?? {},
    confidence: confidence?.score ?? null,
    confidenceExplanation: confidence?.explanation ?? [],
    decision: decision?.decision ?? null,
    decisionRule: decision?.rule ?? null,
    decisionReason: decision?.reason ?? null,
    failure: str(c.failure),
  };
}

function recordView(r: IterationRecord, text: (v: unknown) => number | null): ViewerIterationRecord {
  const outcome = r.agent?.outcome;
  return {
    index: r.index,
    decision: r.decision,
    decisionRule: r.decisionRule,
    reason: r.reason,
    quality: r.quality,
    confidence: r.confidence,
    attempts: r.attempts,
    retryDelaysMs: r.retryDelaysMs,
    durationMs: r.finishedAt - r.startedAt,
    costUsd: r.costUsd,
    checks: r.checks.map((c) => ({ command: c.command, exitCode: c.exitCode, durationMs: c.durationMs })),
    answer: text(outcome?.kind === 'answer' ? outcome.result.result : null),
    prompt: text(r.prompt),
  };
}

/** `xstate.done.actor.0.iteration.awaitingAgent` → `callAgent done`, using the machines' own invoke names. */
function eventLabeller(): (type: string) => string {
  const graphs = machineGraphs();
  const invoked = new Map<string, string>();
  for (const graph of Object.values(graphs)) {
    for (const state of graph.states) {
      state.invokes.forEach((invoke, i) => invoked.set(invoke.id ?? `${i}.${graph.id}.${state.key}`, invoke.src));
    }
  }
  return (type) => {
    const done = /^xstate\.(done|error)\.actor\.(.+)$/.exec(type);
    if (done) return `${invoked.get(done[2]!) ?? done[2]} ${done[1] === 'done' ? 'done' : 'failed'}`;
    const after = /^xstate\.after\.([^.]+)\./.exec(type);
    if (after) return `after ${after[1]}`;
    if (type === 'xstate.init') return 'started';
    if (type === 'obra.stop') return 'run stopped';
    return type;
  };
}

function eventNote(event: JournalEntry['event']): string | null {
  const output = event.output as Record<string, unknown> | undefined;
  if (event.error) return `error: ${String(event.error)}`;
  if (event.type === 'HUMAN_ANSWER' && typeof event.answer === 'string') return `answer: ${event.answer}`;
  if (!output || typeof output !== 'object') return null;
  const outcome = output.outcome as { kind?: string; message?: string; result?: { result?: string } } | undefined;
  if (outcome?.kind) {
    if (outcome.kind === 'answer') return `agent answered (${outcome.result?.result?.length ?? 0} chars)`;
    return `agent: ${outcome.kind}${outcome.message ? ` — ${outcome.message}` : ''}`;
  }
  // An iteration's record, as the task machine receives it when the iteration ends.
  if ('decisionRule' in output && 'index' in output) return `iteration ${String(output.index)} ended: ${String(output.decision)} (${String(output.decisionRule)})`;
  if ('quality' in output && 'confidence' in output) {
    const q = (output.quality as { score?: number }).score;
    const c = (output.confidence as { score?: number }).score;
    return `quality ${fmt(q)}, confidence ${fmt(c)}`;
  }
  if ('decision' in output && 'rule' in output) return `decision: ${String(output.decision)} (${String(output.rule)})`;
  if ('ok' in output && 'reasons' in output) {
    const reasons = output.reasons as string[];
    return output.ok ? 'answer is valid' : `answer is not valid: ${reasons.join('; ')}`;
  }
  return null;
}

const fmt = (n: number | undefined) => (typeof n === 'number' ? n.toFixed(2) : '-');
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);

