import type { Agent, AgentCallRequest } from './agent.js';
import type { AgentCallRecord } from '../core/types.js';

/**
 * An agent that wraps another to do something around its calls (carry its session between machines, save the
 * work it leaves): it is the inner agent in every other respect — its name, whether it answers in-process, its
 * preflight and its session lock.
 */
export abstract class WrappedAgent implements Agent {
  readonly name: string;
  readonly inProcess: boolean | undefined;

  constructor(protected readonly inner: Agent) {
    this.name = inner.name;
    this.inProcess = inner.inProcess;
  }

  preflight(): void {
    this.inner.preflight?.();
  }

  whenSessionFree(sessionId: string, listener: () => void): () => void {
    return this.inner.whenSessionFree?.(sessionId, listener) ?? (() => {});
  }

  get sessionFile(): Agent['sessionFile'] {
    return this.inner.sessionFile?.bind(this.inner);
  }

  get adoptSessionFile(): Agent['adoptSessionFile'] {
    return this.inner.adoptSessionFile?.bind(this.inner);
  }

  get sessionStore(): Agent['sessionStore'] {
    return this.inner.sessionStore;
  }

  abstract call(request: AgentCallRequest): Promise<AgentCallRecord>;
}
