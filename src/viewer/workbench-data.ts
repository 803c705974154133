import type { PermissionDenial } from '../core/types.js';
import { lineOf } from '../queue/board.js';
import type { RunStore } from '../store/run-store.js';
import { actionsFor } from './actions-for.js';
import type { BoardTask } from './store-feed.js';

/**
 * What the run page's workbench shows of a run now: its card (status, branch, what it waits for), the actions
 * its state allows, and, while it waits for a human, the question and the tool uses the agent was refused,
 * each with the permission rule that would allow it.
 */

export interface RunWorkbench {
  task: BoardTask;
  question: string | null;
  denials: PermissionDenial[];
}

export function runWorkbench(store: RunStore, runId: string): RunWorkbench {
  const read = lineOf(store, runId);
  const line = read.line;
  const task: BoardTask = { ...line, ageMs: line.createdAt ? Date.now() - Date.parse(line.createdAt) : 0, agent: line.agent ?? '?', actions: actionsFor(line) };
  if (line.status !== 'escalated') return { task, question: null, denials: [] };
  const handle = store.openRun(runId);
  try {
    const last = handle.readIterations().at(-1);
    return { task, question: handle.file.question ?? line.reason, denials: last?.permissionDenials ?? [] };
  } finally {
    handle.close();
  }
}
