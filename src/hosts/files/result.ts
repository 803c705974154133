import { viewOf, type RunResult } from '../../engine/run-result.js';
import { grantedRulesOf, usageLimitWaitOf } from '../../persisted/snapshot.js';
import type { RunHandle } from '../../store/run-store.js';

/** A run in the store, as `obra run --json`, `obra show --json` and the library report it. */
export function resultOf(handle: RunHandle, storeDir: string, question: string | null = null): RunResult {
  const file = handle.file;
  const records = handle.readIterations();
  const latest = handle.journal.latest().entry?.snapshot ?? null;
  const waiting = usageLimitWaitOf(latest);
  return {
    runId: file.runId,
    status: handle.effectiveStatus(),
    reason: file.reason,
    task: file.task.text,
    workdir: file.task.workdir,
    sessionId: file.sessionId,
    iterations: records.map(viewOf),
    totalCostUsd: records.reduce((sum, r) => sum + r.costUsd, 0),
    question,
    store: storeDir,
    granted: grantedRulesOf(latest),
    waiting: waiting ? { kind: 'usageLimit', ...waiting } : null,
  };
}
