import type { Agent, AgentCallRequest } from '../../agents/agent.js';
import { UserError } from '../../core/errors.js';
import { isFinalStatus } from '../../core/statuses.js';
import type { AgentCallRecord } from '../../core/types.js';
import { RunControl } from '../../engine/control.js';
import { lockHolder, removeIfOurs, statusOf, waitFor, writeRequest, type ControlOptions, type ControlOutcome } from './control-file.js';
import { resumeRun } from './local.js';

/** Cancels `runId`: through the driving process when one runs it, else directly. */
export async function requestCancel(runId: string, options: ControlOptions): Promise<ControlOutcome> {
  const { status, handleDir } = statusOf(runId, options.storeDir);
  if (isFinalStatus(status)) throw new UserError(`run ${runId} has already finished (its status is ${status}); there is nothing to cancel`);
  if (status === 'running') {
    const request = writeRequest(handleDir, 'cancel', options.reason, options.fs);
    await waitFor(() => statusOf(runId, options.storeDir).status !== 'running', options.waitMs ?? 15_000);
    removeIfOurs(handleDir, request.id);
    const after = statusOf(runId, options.storeDir).status;
    if (after === 'cancelled') return { runId, status: after, message: `run ${runId} is cancelled` };
    if (after === 'running') throw new UserError(`run ${runId} did not stop within ${((options.waitMs ?? 15_000) / 1000).toFixed(0)}s of the cancel request (process ${lockHolder(handleDir)})`, 1);
    if (isFinalStatus(after)) return { runId, status: after, message: `run ${runId} finished as ${after} before the cancel took effect` };
    // It came to rest (paused, escalated, interrupted) just before the request was read: cancel it here.
  }
  const control = new RunControl();
  control.cancel(options.reason ?? 'cancelled by the user');
  const result = await resumeRun(runId, { storeDir: options.storeDir, agent: new InertAgent(), control, runChecks: async () => [] });
  return { runId, status: result.status, message: result.status === 'cancelled' ? `run ${runId} is cancelled` : `run ${runId} ended as ${result.status}: ${result.reason}` };
}

/**
 * The agent a run at rest is restored with to be cancelled: a call that was in flight when the run stopped is
 * re-issued by the restore, and must not start a real agent. It waits until the run stops it.
 */
export class InertAgent implements Agent {
  readonly name = 'inert';

  call(request: AgentCallRequest): Promise<AgentCallRecord> {
    return new Promise((_resolve, reject) => {
      const stop = () => reject(new Error('stopped'));
      if (request.signal?.aborted) stop();
      else request.signal?.addEventListener('abort', stop, { once: true });
    });
  }
}

