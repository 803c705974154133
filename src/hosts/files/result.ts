import { resultFrom, type RunResult } from '../../engine/run-result.js';
import type { RunHandle } from '../../store/run-store.js';

/** A run in the store, as `obra run --json`, `obra show --json` and the library report it. */
export function resultOf(handle: RunHandle, storeDir: string, question: string | null = null): RunResult {
  const file = handle.file;
  return resultFrom({
    runId: file.runId,
    status: handle.effectiveStatus(),
    reason: file.reason,
    task: file.task,
    sessionId: file.sessionId,
    question,
    store: storeDir,
    records: handle.readIterations(),
    latest: handle.journal.latest().entry?.snapshot ?? null,
    agent: file.agent,
  });
}
