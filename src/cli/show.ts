import type { RunResult } from '../engine/run-result.js';
import { resultOf } from '../hosts/files/result.js';
import { denialMessage, recoveredText, usageLimitMessage } from '../logging/messages.js';
import { costText, tokensText, type UsageTotals } from '../core/usage-totals.js';
import { raceAttempts, readRaceDecision } from '../race/race.js';
import { conflictsOfRun, conflictText } from '../queue/overlap.js';
import { RunStore } from '../store/run-store.js';

const usageNote = (usage: UsageTotals) =>
  `${usage.estimated ? ' (~: estimated from agent.prices)' : ''}${usage.unpricedCalls ? ` (+?: ${usage.unpricedCalls} call(s) with no price)` : ''}`;

/** `obra show <runId>`: one run, its iterations with states, decisions, scores, checks and why. */
export function printRunDetails(storeDir: string, runId: string, quiet: boolean, out: NodeJS.WritableStream = process.stdout): RunResult {
  const store = RunStore.open(storeDir, { create: false });
  const handle = store.openRun(runId);
  // The same object `obra run --json` printed (the question too, for a run waiting for a human).
  const result = resultOf(handle, store.dir, handle.file.question);
  handle.close();
  if (!quiet) {
    printResult(result, out);
    // Where its branch would conflict if merged now (worked out after each iteration's commit).
    for (const conflict of conflictsOfRun(store, runId)) out.write(`Warning: its branch ${conflictText(conflict)}\n`);
  }
  return result;
}

/**
 * `obra show <raceId>`: the race's attempts and, once decided, its ranking with the evidence and the reasons.
 * Null when the id names no race (it is a run id, or nothing).
 */
export function printRaceDetails(storeDir: string, raceId: string, json: boolean, out: NodeJS.WritableStream = process.stdout): boolean {
  const store = RunStore.open(storeDir, { create: false });
  const attempts = raceAttempts(store, raceId);
  if (!attempts) return false;
  const decision = readRaceDecision(store, raceId);
  const view = {
    raceId,
    decided: decision !== null,
    winner: decision?.winner ?? null,
    reasons: decision?.reasons ?? [],
    attempts: attempts.map((a) => ({ runId: a.runId, attempt: a.file.queue!.race!.attempt, agent: a.file.agent.kind ?? a.file.agent.name, status: a.status })),
    ranked: decision?.ranked ?? null,
  };
  if (json) {
    out.write(`${JSON.stringify(view, null, 2)}\n`);
    return true;
  }
  out.write(`Race ${raceId}: ${decision ? (decision.winner ? `decided — winner ${decision.winner}` : 'decided — no winner') : 'not decided yet'}\n`);
  for (const reason of view.reasons) out.write(`  ${reason}\n`);
  out.write('\n');
  if (!decision) for (const a of view.attempts) out.write(`Attempt ${a.attempt}: ${a.runId} (${a.agent}) ${a.status}\n`);
  for (const [i, e] of (decision?.ranked ?? []).entries()) {
    out.write(`#${i + 1} attempt ${e.attempt}: ${e.runId} (${e.agent}) ${e.status}${e.runId === decision!.winner ? ' ★' : ''}\n`);
    out.write(`  checks ${e.checksTotal ? `${e.checksPassed}/${e.checksTotal}` : 'none run'}; judge ${e.judge ?? '-'}; quality ${e.quality ?? '-'}; confidence ${e.confidence ?? '-'}; cost ${e.costEstimated ? '~' : ''}$${e.costUsd.toFixed(4)}; time ${(e.durationMs / 1000).toFixed(1)} s\n`);
  }
  return true;
}

/** A run's details as `obra show` prints them, wherever the run is kept. */
export function printResult(result: RunResult, out: NodeJS.WritableStream = process.stdout): void {
  out.write(`Run ${result.runId}: ${result.status}${result.reason ? ` — ${result.reason}` : ''}\n`);
  out.write(`Task: ${result.task}\nWorkdir: ${result.workdir}\nSession: ${result.sessionId ?? '-'}\nCost: $${result.totalCostUsd.toFixed(4)}\n`);
  out.write(`Agent: ${result.agent ?? '-'}; ${result.usage.calls} call(s), ${tokensText(result.usage)}, ${costText(result.usage)}${usageNote(result.usage)}\n`);
  if (result.waiting) out.write(`Waiting: ${usageLimitMessage(result.waiting)} (${result.waiting.message})\n`);
  if (result.granted.length) out.write(`Granted: ${result.granted.join(', ')}\n`);
  out.write('\n');
  if (!result.iterations.length) out.write('No finished iteration yet.\n');
  for (const it of result.iterations) {
    out.write(`Iteration ${it.index}: ${it.decision} (${it.decisionRule}) in ${(it.durationMs / 1000).toFixed(2)}s, ${it.attempts} attempt(s)\n`);
    out.write(`  states: ${it.states.join(' → ')}\n`);
    if (it.recovered) out.write(`  agent: ${recoveredText(it.recovered)} — ${it.recovered.note}\n`);
    if (it.retryDelaysMs.length) out.write(`  backoff: ${it.retryDelaysMs.map((d) => `${(d / 1000).toFixed(3)}s`).join(', ')}\n`);
    out.write(`  quality ${it.quality ?? '-'} ${JSON.stringify(it.qualityBreakdown)}; confidence ${it.confidence ?? '-'}\n`);
    if (it.tokens) out.write(`  tokens: ${tokensText(it.tokens)}, cost ${it.tokens.costUsd === null ? 'unknown (no price)' : `$${it.tokens.costUsd.toFixed(4)}${it.tokens.costSource === 'estimate' ? ' (estimate)' : ''}`}\n`);
    for (const check of it.checks) out.write(`  check \`${check.command}\` → exit ${check.exitCode ?? 'timeout'} (${check.durationMs} ms)\n`);
    if (it.validation && !it.validation.ok) out.write(`  validation: ${it.validation.reasons.join('; ')}\n`);
    for (const denial of it.permissionDenials) out.write(`  denied: ${denialMessage(denial)}\n`);
    if (it.reason) out.write(`  why: ${it.reason}\n`);
  }
}

