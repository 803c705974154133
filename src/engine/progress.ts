import type { AnyActorRef, InspectionEvent } from 'xstate';
import type { IterationContext } from '../../machines/iteration.machine.js';
import type { TaskContext } from '../../machines/task.machine.js';
import type { Agent } from '../agents/agent.js';
import type { EngineEvent } from './events.js';
import type { Step } from './recorder.js';

type Snapshot<C> = { value: string; context: C; status: string; hasTag(tag: string): boolean };

/** Turns the journaled transitions into progress events (the CLI's lines, the retry warnings, the limit wait). */
export class ProgressObserver {
  private lastIterationState: string | null = null;
  private releaseListener: (() => void) | null = null;

  constructor(
    private readonly emit: (event: EngineEvent) => void,
    private readonly agent: Agent,
  ) {}

  observe(event: InspectionEvent, step: (Step & { at: number }) | null): void {
    if (!step || event.type !== '@xstate.snapshot') return;
    const at = step.at;
    if (step.actor === 'task') {
      const snapshot = event.snapshot as unknown as Snapshot<TaskContext>;
      const context = snapshot.context;
      this.emit({ type: 'state', actor: 'task', index: context.iterations, state: String(step.task), at });
      const limit = context.usageLimit;
      if (snapshot.status === 'active' && snapshot.value === 'waitingForUsageLimit' && limit && limit.resetsAt !== null) {
        this.emit({ type: 'usage-limit', index: context.iterations + 1, limitType: limit.limitType, resetsAt: limit.resetsAt, dueAt: limit.dueAt, message: limit.message });
      }
      return;
    }
    const snap = event.snapshot as unknown as Snapshot<IterationContext>;
    if (snap.status !== 'active') return;
    const state = snap.value;
    const previous = this.lastIterationState;
    this.lastIterationState = `${snap.context.index}:${state}`;
    if (previous === this.lastIterationState) return;
    const context = snap.context;
    this.emit({ type: 'state', actor: 'iteration', index: context.index, state, at });
    this.releaseListener?.();
    this.releaseListener = null;
    if (!snap.hasTag('backoff')) return;
    const sessionId = context.call?.sessionId ?? context.sessionId ?? '';
    const outcome = context.call?.outcome;
    const wait = context.wait;
    this.emit({
      type: 'retry',
      kind: wait?.kind ?? 'sessionBusy',
      index: context.index,
      sessionId,
      delayMs: wait?.delayMs ?? context.retryDelaysMs.at(-1) ?? 0,
      attempt: wait?.attempt ?? context.retries,
      maxRetries: wait?.maxRetries ?? context.retry.maxRetries,
      dueAt: context.retryDueAt ?? at,
      reason: outcome && 'message' in outcome ? outcome.message : 'session busy',
      holder: wait?.holder,
    });
    // When Obra's own lock on the session is released (by another task here, or another Obra process), stop
    // waiting at once: an event, not a poll. A busy reported by the CLI itself has no such event: backoff only.
    if (outcome?.kind === 'sessionBusy' && outcome.holder) {
      const waiting = event.actorRef as AnyActorRef;
      this.releaseListener = this.agent.whenSessionFree?.(sessionId, () => waiting.send({ type: 'SESSION_RELEASED' })) ?? null;
    }
  }

  dispose(): void {
    this.releaseListener?.();
    this.releaseListener = null;
  }
}
