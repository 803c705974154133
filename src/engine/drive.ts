import { createActor, type AnyActorRef, type InspectionEvent, type Snapshot } from 'xstate';
import type { TaskContext, TaskEvent, TaskInput, TaskOutput } from '../../machines/task.machine.js';
import type { ObraConfig } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import type { RunStatus } from '../core/types.js';
import { pendingEffectsOf } from '../persisted/snapshot.js';
import { burstTime } from './clock.js';
import type { EngineEvent } from './events.js';
import type { CommitStats, EngineHost, RunOutcome } from './host.js';
import { bindDrive, sharedMachines, type MachineDeps } from './machines.js';
import { ProgressObserver } from './progress.js';
import { TransitionRecorder, type Durability } from './recorder.js';
import type { RunResult } from './run-result.js';

/**
 * The engine core: drives one run's task machine (and the iteration machine it invokes) on a host, from its
 * start or from a restored snapshot, until the run ends or comes to rest — done, escalated, paused, failed,
 * cancelled, out of budget, or interrupted (the abort signal). Every transition goes to the host's journal
 * before the engine acts on it (see recorder.ts); the host's storage, clock, effects and control signals are
 * all it knows of the world.
 *
 * A drive has an explicit lifecycle, `status`: `created` → `running` → `stopping` → `settled` (it wrote how the
 * run stands) or `abandoned` (its storage failed: the run stays resumable from its last saved state). Only a
 * `running` drive records transitions and judges them.
 */

export interface DriveOptions {
  config: ObraConfig;
  onEvent?: (event: EngineEvent) => void;
  /** XState's inspection events of the run's actors (the Stately inspector, tests). */
  inspect?: (event: InspectionEvent) => void;
  /** Aborting stops the run at once (the agent's process tree is killed); it stays resumable. */
  signal?: AbortSignal;
  /** PAUSE / CANCEL from this process (see RunControl). */
  control?: { attach(send: (event: TaskEvent) => void): () => void };
  /** When journal entries are made durable: `transition` (write-ahead, group commit; default) or `strict`. */
  durability?: Durability;
  /** Every journal commit's figures: for benchmarks. */
  onJournalCommit?: (stats: CommitStats, encodeMs: number) => void;
}

/** Where a drive starts: a new run's input, or a snapshot to restore (with the event that wakes it, if any). */
export type DriveStart = { input: TaskInput; event?: TaskEvent } | { snapshot: unknown; fromSeq: number | null; event?: TaskEvent };

export type DriveStatus = 'created' | 'running' | 'stopping' | 'settled' | 'abandoned';

export class TaskDrive {
  status: DriveStatus = 'created';
  private actor: AnyActorRef | null = null;
  private recorder: TransitionRecorder | null = null;
  private progress: ProgressObserver | null = null;
  private detach: (() => void)[] = [];
  private resolve: (result: RunResult) => void = () => {};
  private reject: (error: unknown) => void = () => {};
  private readonly emit: (event: EngineEvent) => void;

  constructor(
    private readonly host: EngineHost,
    private readonly start: DriveStart,
    private readonly options: DriveOptions,
  ) {
    this.emit = options.onEvent ?? (() => {});
  }

  /** Drives the run; resolves with how it stands when it ends or rests. Rejects only when it cannot start. */
  async run(): Promise<RunResult> {
    if (this.status !== 'created') throw new Error(`a drive runs once (this one is ${this.status})`);
    const { host, options } = this;
    await host.run.begin();
    this.status = 'running';
    const restored = 'snapshot' in this.start;
    this.emit({ type: 'run-started', runId: host.run.runId, resumed: restored, store: host.run.where });

    // One time per synchronous burst (see burstTime): replay then computes the very same times.
    const now = burstTime(host.clock);
    const recorder = new TransitionRecorder(host.run.journal, now, () => this.actor ?? undefined, {
      durability: options.durability ?? options.config.store.sync,
      firstLinesWithFirstStep: host.run.writesAreCalls ?? false,
      onCommit: options.onJournalCommit,
      onFailure: (error) => this.abandon(error),
    });
    this.recorder = recorder;
    const progress = new ProgressObserver(this.emit, host.effects.agent);
    this.progress = progress;

    // A restored snapshot with the agent's call in flight: a crash cut it, and the first call asks what became of it.
    let cutCall = restored && pendingEffectsOf((this.start as { snapshot: unknown }).snapshot).includes('callAgent');
    const deps: MachineDeps = {
      config: options.config,
      savesOutside: host.run.savesOutside ?? false,
      takeCutCall: () => {
        const cut = cutCall;
        cutCall = false;
        return cut;
      },
      agent: host.effects.agent,
      checks: host.effects.runChecks,
      limits: host.effects.limits,
      slots: host.effects.slots,
      now,
      beforeStep: (effect) => recorder.beforeStep(effect),
      saveIteration: async (record) => {
        // A `persisting` restored after a crash runs again: the record is kept once, and announced once.
        try {
          if (await host.run.saveIteration(record)) this.emit({ type: 'iteration-done', record });
        } catch (error) {
          // A full or read-only disk is not the iteration's fault: stop, resumable, instead of failing the run.
          this.abandon(error as Error);
          throw error;
        }
      },
      onAgentProgress: (progressEvent, input) => this.emit({ type: 'agent-progress', index: input.index, progress: progressEvent }),
      onResponse: (call, input) =>
        this.emit({ type: 'response', index: input.index, chars: call.outcome.kind === 'answer' ? call.outcome.result.result.length : 0, attempts: input.attempt, durationMs: call.durationMs }),
    };
    // The statecharts are built once per clock and shared by the drives; this drive's effects are tied to its
    // actor (bindDrive, below) before it starts.
    const machine = sharedMachines(now);

    if ('snapshot' in this.start) {
      // Recorded before anything runs again: where the run was restored from, and which effects start over (an
      // agent call in flight is issued again on the same session: at-least-once).
      recorder.marker({ type: 'obra.resume', fromSeq: this.start.fromSeq, restarted: pendingEffectsOf(this.start.snapshot), pid: process.pid });
      host.run.journal.restart();
    }
    const actor = createActor(machine, {
      // The input is only read for a fresh start; a restored snapshot carries its own context.
      input: ('input' in this.start ? this.start.input : undefined) as TaskInput,
      snapshot: ('snapshot' in this.start ? this.start.snapshot : undefined) as Snapshot<unknown> as never,
      clock: host.clock as never,
      inspect: (event) => {
        if (this.status === 'running') progress.observe(event, recorder.observe(event));
        options.inspect?.(event);
      },
    });
    bindDrive(actor, deps);
    this.actor = actor;

    return new Promise<RunResult>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
      // Restored runs may start in a waiting state: judge only once the wake-up events were delivered.
      let ready = false;
      let judging = false;
      const judge = () => {
        if (!ready || judging) return;
        // Observers hear of a transition before it is inspected (and journaled): judge once that is done.
        judging = true;
        queueMicrotask(() => {
          judging = false;
          if (this.status === 'running') this.judge();
        });
      };
      const onAbort = () => this.finish('interrupted', 'interrupted; `obra resume <runId>` continues where it stopped');
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.detach.push(() => options.signal?.removeEventListener('abort', onAbort));

      actor.subscribe({ next: judge, error: (error) => this.finish('failed', `the engine stopped on an internal error: ${String(error)}`) });
      actor.start();
      const send = (event: TaskEvent) => actor.send(event);
      if (options.control) this.detach.push(options.control.attach(send));
      if (host.control) this.detach.push(host.control(send));
      if ('snapshot' in this.start) this.wake();
      if (this.start.event && this.status === 'running') actor.send(this.start.event);
      ready = true;
      if (options.signal?.aborted) onAbort();
      judge();
    });
  }

  /**
   * A restored snapshot knows nothing of the timers it had (XState does not persist delayed events): each actor
   * that can take RESUMED is sent it, and its machine decides what that means — a backoff or a usage-limit
   * wait is re-entered (it waits what is left of it), a paused task goes on. An agent call in flight is
   * started again by XState itself.
   */
  private wake(): void {
    const actor = this.actor!;
    const task = actor.getSnapshot() as { can(event: TaskEvent): boolean; children: Record<string, AnyActorRef | undefined> };
    const iteration = task.children.iteration;
    const iterationSnapshot = iteration?.getSnapshot() as { status: string; can(event: { type: 'RESUMED' }): boolean } | undefined;
    if (iteration && iterationSnapshot?.status === 'active' && iterationSnapshot.can({ type: 'RESUMED' })) iteration.send({ type: 'RESUMED' });
    if (task.can({ type: 'RESUMED' })) actor.send({ type: 'RESUMED' });
  }

  /** How the run stands after a burst: ended, at rest waiting for a person, paused — or still going. */
  private judge(): void {
    const snapshot = this.actor!.getSnapshot() as { status: string; output?: TaskOutput; error?: unknown; context: TaskContext; hasTag(tag: string): boolean };
    if (snapshot.status === 'done') {
      const output = snapshot.output!;
      this.finish(output.status, output.reason);
    } else if (snapshot.status === 'error') {
      this.finish('failed', `the engine stopped on an internal error: ${String(snapshot.error)}`);
    } else if (snapshot.hasTag('escalated')) {
      this.finish('escalated', snapshot.context.reason ?? 'a human decision is needed', snapshot.context.question);
    } else if (snapshot.hasTag('paused')) {
      this.finish('paused', `${snapshot.context.reason ?? 'paused for review'}; \`obra resume <runId>\` continues`);
    }
  }

  /** Ends the drive: everything up to the last transition durable, then the run's status written. */
  private finish(status: RunStatus, reason: string, question: string | null = null): void {
    if (this.status !== 'running') return;
    const recorder = this.recorder!;
    // An interruption is written and synced now (the process may be on its way out); any other end is made
    // durable by settle() with the disk waited for off the event loop.
    if (status === 'interrupted') recorder.marker({ type: 'obra.interrupted', reason });
    // The journal failed while finishing: abandon() has taken over.
    if (this.status !== 'running') return;
    const sessionId = (this.actor!.getSnapshot() as { context: TaskContext }).context.sessionId;
    this.stop();
    void this.settle({ status, reason, question, sessionId });
  }

  /** The journal durable to its last line (the disk waited for off the event loop), then the run's status. */
  private async settle(outcome: RunOutcome): Promise<void> {
    const recorder = this.recorder!;
    let result: RunResult;
    try {
      // A host whose writes are calls makes the last lines durable with the run's end (its settle carries them).
      const written = this.host.run.writesAreCalls ? recorder.commitForSettle() : await recorder.commitDurably();
      if (!written) throw recorder.failure ?? new Error('the journal could not be written');
      result = await this.host.run.settle(outcome);
    } catch (error) {
      this.abandoned(error as Error);
      return;
    }
    const { status, reason } = outcome;
    this.status = 'settled';
    this.emit({ type: 'run-finished', runId: this.host.run.runId, status, reason });
    this.resolve(result);
  }

  /** The storage failed mid-run: stop here. */
  private abandon(error: Error): void {
    if (this.status !== 'running') return;
    this.stop();
    this.abandoned(error);
  }

  /** The run stops at its last saved state and stays resumable. */
  private abandoned(error: Error): void {
    this.status = 'abandoned';
    this.host.run.abandon();
    const runId = this.host.run.runId;
    this.reject(new UserError(`${error.message}; run ${runId} stopped at its last saved state — \`obra resume ${runId}\` continues it once this is fixed`, 1));
  }

  private stop(): void {
    // First: the actor's last inspection events (it stops) are not transitions to record or judge.
    this.status = 'stopping';
    for (const detach of this.detach.splice(0)) detach();
    this.progress?.dispose();
    this.actor?.stop();
  }
}
