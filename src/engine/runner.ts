import { randomBytes, randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { createActor, type AnyActorRef, type InspectionEvent, type Snapshot } from 'xstate';
import type { IterationContext } from '../../machines/iteration.machine.js';
import { createIterationMachine } from '../../machines/iteration.machine.js';
import { createTaskMachine, type TaskContext, type TaskEvent, type TaskInput, type TaskOutput } from '../../machines/task.machine.js';
import type { Agent, AgentProgress } from '../agents/agent.js';
import { ClaudeCodeAgent, type ClaudeCodeAgentOptions } from '../agents/claude-code-agent.js';
import { validateConfig } from '../config/load.js';
import { configSchema, type ObraConfig } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import type { IterationRecord, RunStatus, TaskSpec } from '../core/types.js';
import type { runChecks } from '../scoring/checks.js';
import { RunStore, type JournalEntry, type RunHandle } from '../store/run-store.js';
import { openInspection, type Inspection, type InspectOption } from '../inspect/engine-hook.js';
import { attachRunControl, type RunControl } from '../control/run-control.js';
import { iterationActors } from './implementations.js';
import { resultOf, type RunResult } from './run-result.js';

/** XState's clock plus `now`: the wall clock in production, a `SimulatedClock` in tests and replay. */
export interface Clock {
  setTimeout(fn: (...args: unknown[]) => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
  now(): number;
}

export const systemClock: Clock = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id as NodeJS.Timeout),
  now: () => Date.now(),
};

/** What the engine reports while it works (the CLI prints these; library users may too). */
export type EngineEvent =
  | { type: 'run-started'; runId: string; resumed: boolean; store: string }
  | { type: 'state'; actor: 'task' | 'iteration'; index: number; state: string; at: number }
  | { type: 'retry'; index: number; sessionId: string; delayMs: number; attempt: number; maxRetries: number; dueAt: number; reason: string }
  | { type: 'response'; index: number; chars: number; attempts: number; durationMs: number }
  | { type: 'agent-progress'; index: number; progress: AgentProgress }
  | { type: 'iteration-done'; record: IterationRecord }
  | { type: 'run-finished'; runId: string; status: RunStatus; reason: string };

export interface EngineOptions {
  config?: ObraConfig;
  /** The agent to drive; defaults to the Claude Code CLI from `config.agent.local`. */
  agent?: Agent;
  /** Where runs are kept; defaults to `config.store.dir` under the current directory. */
  storeDir?: string;
  clock?: Clock;
  onEvent?: (event: EngineEvent) => void;
  /**
   * Live inspection: a function receives every XState inspection event; `true` or `{ port }` serves the run to
   * the Stately inspector on 127.0.0.1 while it runs (see `src/inspect/engine-hook.ts`).
   */
  inspect?: InspectOption;
  /** Aborting stops the run at once (the agent's process tree is killed); it stays resumable. */
  signal?: AbortSignal;
  /** Replaces the check runner (tests). */
  runChecks?: typeof runChecks;
  /** Pause or cancel the run from this process (`control.pause()`, `control.cancel()`); see src/control/run-control.ts. */
  control?: RunControl;
  /** On resume: a Claude Code binary to use instead of the one the run started with. */
  agentCommand?: string;
}

export interface StartOptions extends EngineOptions {
  task: string;
  workdir?: string;
  /** Added to `config.task.checks`. */
  checks?: string[];
  runId?: string;
}

export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

export function agentFromConfig(config: ObraConfig): Agent {
  return new ClaudeCodeAgent(claudeOptionsFromConfig(config));
}

export function claudeOptionsFromConfig(config: ObraConfig): ClaudeCodeAgentOptions {
  const local = config.agent.local;
  return {
    command: local.command,
    timeoutMs: local.timeout * 1000,
    extraArgs: local.extra_args,
    model: local.model,
    maxTurns: local.max_turns,
    permissionMode: local.permission_mode,
    allowedTools: local.allowed_tools,
    appendSystemPrompt: local.append_system_prompt,
  };
}

/** Starts a new run and drives it until it is done, needs a human, fails, or is interrupted. */
export async function runTask(options: StartOptions): Promise<RunResult> {
  const config = validateConfig(options.config ?? {});
  if (!options.task.trim()) throw new UserError('the task is empty — say what the agent should do with --task "..."');
  const agent = options.agent ?? agentFromConfig(config);
  agent.preflight?.();
  const store = RunStore.open(options.storeDir ?? config.store.dir);
  const runId = options.runId ?? newRunId();
  const task: TaskSpec = {
    text: options.task,
    workdir: resolve(options.workdir ?? process.cwd()),
    checks: [...config.task.checks, ...(options.checks ?? [])],
    requiredMarkers: config.task.required_markers,
  };
  const local = config.agent.local;
  const input: TaskInput = {
    runId,
    task,
    sessionId: local.session_id ?? randomUUID(),
    sessionStrategy: local.session_strategy,
    retry: {
      maxRetries: local.max_retries,
      initialDelayMs: local.retry_initial_delay * 1000,
      backoff: local.retry_backoff,
      maxDelayMs: local.retry_max_delay * 1000,
      jitter: local.retry_jitter,
      onExhausted: local.on_lock_exhausted,
    },
    budgets: {
      maxIterations: config.task.max_iterations,
      maxCostUsd: config.budget.max_cost_usd,
      maxTurns: config.budget.max_turns,
      maxWallMs: config.budget.max_wall_seconds === null ? null : config.budget.max_wall_seconds * 1000,
    },
    // Stuck detection looks back `stuck_after` iterations, A/B alternation four: keep at least that many.
    historyWindow: Math.max(config.context.history_window, config.decision.stuck_after, 4),
  };
  // A taken inspector port fails here, before the run is created.
  const inspection = await openInspection(options.inspect);
  let handle: RunHandle;
  try {
    handle = store.createRun({
      runId,
      task,
      createdAt: new Date().toISOString(),
      sessionId: input.sessionId,
      config: config as unknown as Record<string, unknown>,
      agent: agent instanceof ClaudeCodeAgent ? { name: agent.name, command: agent.options.command, env: agent.options.env } : { name: agent.name },
    });
  } catch (error) {
    await inspection.close();
    throw error;
  }
  return drive({ ...options, config, agent, store, handle, inspection }, { input });
}

/** Continues a run from its last persisted snapshot (after a crash, Ctrl-C, or a human's answer). */
export async function resumeRun(runId: string, options: EngineOptions & { event?: TaskEvent } = {}): Promise<RunResult> {
  const store = RunStore.open(options.storeDir ?? options.config?.store.dir ?? '.obra', { create: false });
  const handle = store.openRun(runId);
  const status = handle.effectiveStatus();
  if (status === 'running') throw new UserError(`run ${runId} is still running in process ${handle.lockHolder()}`, 3);
  const last = handle.latestSnapshot();
  if (!last) throw new UserError(`run ${runId} has no saved snapshot to resume from (${handle.dir}/journal.jsonl is empty)`);
  // The run goes on with the config it started with; only the agent may be swapped (e.g. a new binary path).
  const config = configSchema.parse(handle.db.data.config);
  const agent = options.agent ?? storedAgent(handle, config, options.agentCommand);
  agent.preflight?.();
  const inspection = await openInspection(options.inspect);
  return drive({ ...options, config, agent, store, handle, inspection }, { snapshot: last.snapshot as Snapshot<unknown>, event: options.event });
}

function storedAgent(handle: RunHandle, config: ObraConfig, command: string | undefined): Agent {
  const spec = handle.db.data.agent;
  if (spec.name !== 'claude-code') {
    throw new UserError(`run ${handle.runId} was driven by the in-process agent "${spec.name}"; resume it from your script with resumeRun(runId, { agent })`);
  }
  return new ClaudeCodeAgent({ ...claudeOptionsFromConfig(config), command: command ?? spec.command ?? config.agent.local.command, env: spec.env });
}

/** Sends a person's answer to a run waiting in `awaitingHuman`, then drives it on. */
export async function answerRun(runId: string, answer: string, options: EngineOptions = {}): Promise<RunResult> {
  if (!answer.trim()) throw new UserError('the answer is empty — write what the agent should do next');
  const store = RunStore.open(options.storeDir ?? options.config?.store.dir ?? '.obra', { create: false });
  const handle = store.openRun(runId);
  const status = handle.effectiveStatus();
  handle.close();
  if (status !== 'escalated') throw new UserError(`run ${runId} is not waiting for an answer (its status is ${status})`);
  return resumeRun(runId, { ...options, event: { type: 'HUMAN_ANSWER', answer } });
}

interface DriveContext extends EngineOptions {
  config: ObraConfig;
  agent: Agent;
  store: RunStore;
  handle: RunHandle;
  inspection: Inspection;
}

export function buildMachines(deps: { config: ObraConfig; agent: Agent; now: () => number; saveIteration: (r: IterationRecord) => void; onAgentProgress?: Parameters<typeof iterationActors>[0]['onAgentProgress']; runChecks?: typeof runChecks }) {
  const iteration = createIterationMachine(deps.now).provide({
    actors: iterationActors({ config: deps.config, agent: deps.agent, saveIteration: deps.saveIteration, onAgentProgress: deps.onAgentProgress, checks: deps.runChecks }),
  });
  return createTaskMachine(deps.now).provide({ actors: { iteration } });
}

async function drive(ctx: DriveContext, start: { input?: TaskInput; snapshot?: Snapshot<unknown>; event?: TaskEvent }): Promise<RunResult> {
  const { handle, config, agent } = ctx;
  const clock = ctx.clock ?? systemClock;
  const emit = ctx.onEvent ?? (() => {});
  try {
    handle.acquireLock();
  } catch (error) {
    await ctx.inspection.close();
    throw error;
  }
  handle.update({ status: 'running', reason: '', finishedAt: null });
  emit({ type: 'run-started', runId: handle.runId, resumed: !start.input, store: ctx.store.dir });

  const machine = buildMachines({
    config,
    agent,
    now: () => clock.now(),
    runChecks: ctx.runChecks,
    saveIteration: (record) => {
      // A `persisting` restored after a crash runs again: the record is kept once, and announced once.
      if (handle.appendIteration(record)) {
        handle.update({ iterations: handle.db.data.iterations + 1, totalCostUsd: handle.db.data.totalCostUsd + record.costUsd });
        emit({ type: 'iteration-done', record });
      }
    },
    onAgentProgress: (progress, input) => emit({ type: 'agent-progress', index: input.index, progress }),
  });

  let actor!: ReturnType<typeof createActor<typeof machine>>;
  let stopped = false;
  const journal = new JournalWriter(handle, clock, emit, agent, () => actor);
  actor = createActor(machine, {
    // The input is only read for a fresh start; a restored snapshot carries its own context.
    input: start.input as TaskInput,
    snapshot: start.snapshot as never,
    clock: clock as never,
    inspect: (event) => {
      if (!stopped) journal.observe(event);
      ctx.inspection.inspect?.(event);
    },
  });

  return new Promise<RunResult>((resolvePromise) => {
    let detachControl = () => {};
    const finish = (status: RunStatus, reason: string, question: string | null = null) => {
      if (stopped) return;
      detachControl();
      // Observers hear of a transition before the inspector does: write the final state now, then stop.
      journal.writeRoot();
      stopped = true;
      journal.dispose();
      ctx.signal?.removeEventListener('abort', onAbort);
      actor.stop();
      const taskContext = actor.getSnapshot().context as TaskContext;
      handle.update({
        status,
        reason,
        sessionId: taskContext.sessionId,
        finishedAt: ['done', 'failed', 'max_iterations', 'budget_exceeded', 'cancelled'].includes(status) ? new Date().toISOString() : null,
      });
      handle.releaseLock();
      handle.close();
      emit({ type: 'run-finished', runId: handle.runId, status, reason });
      const result = resultOf(handle, ctx.store.dir, question);
      // The inspector gets the run's last events before the caller hears it is over.
      void ctx.inspection.close().finally(() => resolvePromise(result));
    };
    // Restored runs may start in a waiting state: judge only after the resume events were delivered.
    let ready = false;
    const settle = () => {
      if (!ready) return;
      const snapshot = actor.getSnapshot();
      if (snapshot.status === 'done') {
        const output = snapshot.output as TaskOutput;
        finish(output.status, output.reason);
      } else if (snapshot.status === 'error') {
        finish('failed', `the engine stopped on an internal error: ${String(snapshot.error)}`);
      } else if (snapshot.matches('awaitingHuman')) {
        const context = snapshot.context as TaskContext;
        finish('escalated', context.reason ?? 'a human decision is needed', context.question);
      } else if (snapshot.matches('paused')) {
        finish('paused', `${(snapshot.context as TaskContext).reason ?? 'paused for review'}; \`obra resume <runId>\` continues`);
      }
    };
    const onAbort = () => finish('interrupted', 'interrupted; `obra resume <runId>` continues where it stopped');
    ctx.signal?.addEventListener('abort', onAbort, { once: true });

    actor.subscribe({ next: settle, error: (error) => finish('failed', `the engine stopped on an internal error: ${String(error)}`) });
    actor.start();
    // PAUSE / CANCEL from this process (`control`) or another one (runs/<id>/control.json); queued ones go first.
    detachControl = attachRunControl({ runDir: handle.dir, control: ctx.control, send: (event) => actor.send(event) });
    if (start.snapshot) {
      // A restored backoff wait has no timer (XState does not persist delayed events): re-enter it so it waits
      // for what is left of it. A restored agent call is re-issued by XState itself (at-least-once).
      const child = actor.getSnapshot().children.iteration as AnyActorRef | undefined;
      if (child?.getSnapshot().value === 'retryingSessionLock') child.send({ type: 'RESUMED' });
      if (actor.getSnapshot().matches('paused')) actor.send({ type: 'CONTINUE' });
    }
    if (start.event && !stopped) actor.send(start.event);
    ready = true;
    if (ctx.signal?.aborted) onAbort();
    settle();
  });
}

/**
 * Writes one journal line for every transition of the task or iteration machine, synchronously and fsync'd
 * before the engine goes on, and turns transitions into progress events.
 */
class JournalWriter {
  private lastIterationState: string | null = null;
  private lastWritten: string | null = null;
  private releaseListener: (() => void) | null = null;

  constructor(
    private readonly handle: RunHandle,
    private readonly clock: Clock,
    private readonly emit: (event: EngineEvent) => void,
    private readonly agent: Agent,
    private readonly root: () => AnyActorRef,
  ) {}

  observe(event: InspectionEvent): void {
    if (event.type !== '@xstate.snapshot') return;
    const root = this.root();
    if (!root) return;
    const rootSnapshot = root.getSnapshot() as { value: unknown; children: Record<string, AnyActorRef | undefined> };
    const isRoot = event.actorRef === root;
    // A child transition while the root itself is mid-transition (a new iteration being spawned) is written
    // by the root's own snapshot event right after, with the root's final state.
    const isIteration = !isRoot && rootSnapshot.children.iteration === event.actorRef;
    if (!isRoot && !isIteration) return;

    const at = this.write(isRoot ? 'task' : 'iteration', compactEvent(event.event));

    if (isRoot) {
      this.emit({ type: 'state', actor: 'task', index: (event.snapshot as unknown as { context: TaskContext }).context.iterations, state: String(rootSnapshot.value), at });
      return;
    }
    const snap = event.snapshot as unknown as { value: string; context: IterationContext; status: string };
    if (snap.status !== 'active') return;
    const state = snap.value;
    const previous = this.lastIterationState;
    this.lastIterationState = `${snap.context.index}:${state}`;
    if (previous === this.lastIterationState) return;
    const context = snap.context;
    if (state === 'validating' && context.call) {
      const chars = context.call.outcome.kind === 'answer' ? context.call.outcome.result.result.length : 0;
      this.emit({ type: 'response', index: context.index, chars, attempts: context.attempts, durationMs: context.call.durationMs });
    }
    this.emit({ type: 'state', actor: 'iteration', index: context.index, state, at });
    this.releaseListener?.();
    this.releaseListener = null;
    if (state === 'retryingSessionLock') {
      const sessionId = context.call?.sessionId ?? context.sessionId ?? '';
      this.emit({
        type: 'retry',
        index: context.index,
        sessionId,
        delayMs: context.retryDelaysMs.at(-1) ?? 0,
        attempt: context.retries,
        maxRetries: context.retry.maxRetries,
        dueAt: context.retryDueAt ?? at,
        reason: context.call && 'message' in context.call.outcome ? context.call.outcome.message : 'session busy',
      });
      // When another task of this process frees the session, stop waiting at once (an event, not a poll).
      const waiting = event.actorRef as AnyActorRef;
      this.releaseListener = this.agent.whenSessionFree?.(sessionId, () => waiting.send({ type: 'SESSION_RELEASED' })) ?? null;
    }
  }

  /** Appends the current persisted snapshot of the whole run; returns the clock time it was written at. */
  private write(actor: string, event: JournalEntry['event']): number {
    const root = this.root();
    const rootSnapshot = root.getSnapshot() as { value: unknown; children: Record<string, AnyActorRef | undefined> };
    const child = rootSnapshot.children.iteration;
    const childSnapshot = child?.getSnapshot() as { value: unknown; context: IterationContext; status: string } | undefined;
    const at = this.clock.now();
    const snapshot = root.getPersistedSnapshot();
    const serialised = JSON.stringify(snapshot);
    if (serialised === this.lastWritten) return at; // nothing changed since the last line
    this.lastWritten = serialised;
    this.handle.appendJournal({
      at,
      actor,
      event,
      task: rootSnapshot.value,
      iteration: childSnapshot && childSnapshot.status === 'active' ? { index: childSnapshot.context.index, state: childSnapshot.value } : null,
      snapshot,
    });
    return at;
  }

  /** Writes the run's state as it is now (used when the runner stops, before the inspector would). */
  writeRoot(): void {
    this.write('task', { type: 'obra.stop' });
  }

  dispose(): void {
    this.releaseListener?.();
    this.releaseListener = null;
  }
}

/** The journal keeps events small: the type, plus the output of a finished actor (what replay feeds back). */
function compactEvent(event: { type: string; [key: string]: unknown }): { type: string; [key: string]: unknown } {
  if ('output' in event) return { type: event.type, output: event.output };
  if ('error' in event) return { type: event.type, error: String(event.error) };
  return event;
}
