import type { TaskEvent } from '../../machines/task.machine.js';

/**
 * An in-process handle on a run's PAUSE / CANCEL events: pass one as the `control` option of a drive (`runTask`,
 * `resumeRun`) and call `pause()` or `cancel()`. Events sent before the run starts are queued.
 *
 * - PAUSE takes effect when the current iteration has been persisted (the task goes to `paused`;
 *   `obra resume` continues it).
 * - CANCEL takes effect at once: the iteration in flight is stopped (its agent process tree is killed), the
 *   final state is journaled and the run ends `cancelled`.
 */
export class RunControl {
  private target: ((event: TaskEvent) => void) | null = null;
  private readonly pending: TaskEvent[] = [];

  pause(reason?: string): void {
    this.send({ type: 'PAUSE', reason });
  }

  cancel(reason?: string): void {
    this.send({ type: 'CANCEL', reason });
  }

  send(event: TaskEvent): void {
    if (this.target) this.target(event);
    else this.pending.push(event);
  }

  /** Connects the control to a running task actor; queued events are delivered now, in order. */
  attach(target: (event: TaskEvent) => void): () => void {
    this.target = target;
    while (this.pending.length) target(this.pending.shift()!);
    return () => {
      if (this.target === target) this.target = null;
    };
  }
}
