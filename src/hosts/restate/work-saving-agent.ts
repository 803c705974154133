import type { Agent, AgentCallRequest } from '../../agents/agent.js';
import { WrappedAgent } from '../../agents/wrapped-agent.js';
import type { AgentCallRecord } from '../../core/types.js';

/**
 * The agent of a task that moves between workers: after each call that ran, the work it left in the worktree is
 * saved beside the task's branch (`save`) before the call's record goes back to the machine — and so before its
 * answer reaches the journal in Restate. A worker that takes the task on from a journal holding the answer puts
 * that work back; the answer is never in the journal without the work it describes.
 */
export class WorkSavingAgent extends WrappedAgent {
  constructor(
    inner: Agent,
    private readonly save: (iteration: number) => Promise<void>,
  ) {
    super(inner);
  }

  async call(request: AgentCallRequest): Promise<AgentCallRecord> {
    const record = await this.inner.call(request);
    // A call refused before anything ran (Obra's own session lock, a limit in force) changed nothing.
    if (record.argv.length && !request.signal?.aborted) await this.save(request.index);
    return record;
  }
}
