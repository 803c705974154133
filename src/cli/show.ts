import type { RunResult } from '../engine/run-result.js';
import { resultOf } from '../hosts/files/result.js';
import { denialMessage, recoveredText, usageLimitMessage } from '../logging/messages.js';
import { conflictsOfRun, conflictText } from '../queue/overlap.js';
import { RunStore } from '../store/run-store.js';

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

/** A run's details as `obra show` prints them, wherever the run is kept. */
export function printResult(result: RunResult, out: NodeJS.WritableStream = process.stdout): void {
  out.write(`Run ${result.runId}: ${result.status}${result.reason ? ` — ${result.reason}` : ''}\n`);
  out.write(`Task: ${result.task}\nWorkdir: ${result.workdir}\nSession: ${result.sessionId ?? '-'}\nCost: $${result.totalCostUsd.toFixed(4)}\n`);
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
    for (const check of it.checks) out.write(`  check \`${check.command}\` → exit ${check.exitCode ?? 'timeout'} (${check.durationMs} ms)\n`);
    if (it.validation && !it.validation.ok) out.write(`  validation: ${it.validation.reasons.join('; ')}\n`);
    for (const denial of it.permissionDenials) out.write(`  denied: ${denialMessage(denial)}\n`);
    if (it.reason) out.write(`  why: ${it.reason}\n`);
  }
}

