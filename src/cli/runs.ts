import { RunStore } from '../store/run-store.js';

export interface RunListing {
  runId: string;
  task: string;
  status: string;
  iterations: number;
  costUsd: number;
  startedAt: string;
  durationMs: number | null;
  error?: string;
}

/** Every run in the store; a run whose files are damaged is listed with its error, the others stay readable. */
export function listRuns(storeDir: string): RunListing[] {
  const store = RunStore.open(storeDir, { create: false });
  return store.listRunIds().map((runId) => {
    try {
      // A live or killed run has not written its totals yet: they are counted from its iteration records.
      const { file, status, iterations, totalCostUsd } = store.peekRun(runId);
      const end = file.finishedAt ? Date.parse(file.finishedAt) : status === 'running' ? Date.now() : Date.parse(file.updatedAt);
      return { runId, task: file.task.text, status, iterations, costUsd: totalCostUsd, startedAt: file.createdAt, durationMs: end - Date.parse(file.createdAt) };
    } catch (error) {
      return { runId, task: '?', status: 'unreadable', iterations: 0, costUsd: 0, startedAt: '', durationMs: null, error: (error as Error).message };
    }
  });
}

export function printRunTable(runs: RunListing[], out: NodeJS.WritableStream = process.stdout): void {
  if (!runs.length) {
    out.write('No runs yet. Start one with: obra run --task "..."\n');
    return;
  }
  const rows = runs.map((r) => [
    r.runId,
    r.status,
    String(r.iterations),
    `$${r.costUsd.toFixed(4)}`,
    r.startedAt.replace('T', ' ').slice(0, 19),
    r.durationMs === null ? '-' : `${(r.durationMs / 1000).toFixed(1)}s`,
    r.error ? `(${r.error})` : r.task.length > 50 ? `${r.task.slice(0, 49)}…` : r.task,
  ]);
  const header = ['RUN', 'STATUS', 'ITER', 'COST', 'STARTED', 'DURATION', 'TASK'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  for (const row of [header, ...rows]) out.write(`${row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')}\n`);
}
