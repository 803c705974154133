import type { StatusLine } from '../core/status-line.js';
import { RETRYABLE_STATUSES } from '../core/statuses.js';

/**
 * What the workbench offers for a task in its state: the API actions (src/viewer/api.ts) that its state does not
 * refuse. The API checks again (a page can be old); this only keeps the buttons that would be refused off it.
 */

export type RunAction = 'answer' | 'pause' | 'resume' | 'cancel' | 'retry' | 'merge' | 'discard';

export function actionsFor(line: Pick<StatusLine, 'status' | 'branch' | 'branchOutcome'>): RunAction[] {
  const { status } = line;
  const actions: RunAction[] = [];
  if (status === 'escalated') actions.push('answer');
  if (status === 'running') actions.push('pause');
  if (status === 'paused' || status === 'interrupted') actions.push('resume');
  if (status === 'queued' || status === 'running' || status === 'paused' || status === 'interrupted' || status === 'escalated') actions.push('cancel');
  if ((RETRYABLE_STATUSES as readonly string[]).includes(status)) actions.push('retry');
  // A worktree task's branch: merged once it ended, removed unless it runs.
  const ended = status !== 'running' && status !== 'queued' && status !== 'unreadable';
  if (line.branch && ended && line.branchOutcome !== 'merged') actions.push('merge');
  if (line.branch && status !== 'running' && status !== 'unreadable') actions.push('discard');
  return actions;
}
