import { randomBytes, randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createActor, fromPromise, type AnyActorRef, type InspectionEvent, type Snapshot } from 'xstate';
import type { IterationContext } from '../../machines/iteration.machine.js';
import { createIterationMachine } from '../../machines/iteration.machine.js';
import { createTaskMachine, type TaskContext, type TaskEvent, type TaskInput, type TaskOutput } from '../../machines/task.machine.js';
import type { Agent, AgentProgress } from '../agents/agent.js';
import { AccountLimits } from '../agents/account-limits.js';
import { ClaudeCodeAgent, type ClaudeCodeAgentOptions } from '../agents/claude-code-agent.js';
import { ruleProblem } from '../agents/permissions.js';
import { retryPolicyFromConfig } from '../agents/retry-policy.js';
import { validateConfig } from '../config/load.js';
import { configSchema, type ObraConfig } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import type { IterationRecord, RunStatus, TaskSpec } from '../core/types.js';
import type { runChecks } from '../scoring/checks.js';
import type { CommitStats } from '../store/journal.js';
import { isFinalStatus, RunStore, type RunHandle } from '../store/run-store.js';
import { TransitionRecorder, type Durability, type StepEffect } from '../store/transition-recorder.js';
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
  | { type: 'retry'; kind: 'sessionBusy' | 'rateLimited'; index: number; sessionId: string; delayMs: number; attempt: number; maxRetries: number; dueAt: number; reason: string; holder?: string }
  | { type: 'response'; index: number; chars: number; attempts: number; durationMs: number }
  | { type: 'agent-progress'; index: number; progress: AgentProgress }
  | { type: 'iteration-done'; record: IterationRecord }
  /** The task waits for the account's usage limit to reset (`dueAt`: reset + margin), then runs the iteration again. */
  | { type: 'usage-limit'; index: number; limitType: string | null; resetsAt: number; dueAt: number; message: string }
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
  /**
   * When journal lines are fdatasync'd (see store.sync): `transition` (default) before anything leaves the
   * process and whenever the run comes to rest (write-ahead, group commit); `strict` every step before the next.
   */
  durability?: Durability;
  /** Every journal commit's figures (lines, bytes, write and fdatasync time): for benchmarks. */
  onJournalCommit?: (stats: CommitStats, encodeMs: number) => void;
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
    idleTimeoutMs: local.idle_timeout * 1000,
    apiTimeoutMs: local.api_timeout === undefined ? undefined : local.api_timeout * 1000,
    extraArgs: local.extra_args,
    model: local.model,
    maxTurns: local.max_turns,
    permissionMode: local.permission_mode,
    allowedTools: local.allowed_tools,
    skipPermissions: local.dangerously_skip_permissions,
    appendSystemPrompt: local.append_system_prompt,
  };
}

/** The working directory must exist and be a folder: the agent and the checks run there. */
function checkWorkdir(workdir: string): void {
  let stat;
  try {
    stat = statSync(workdir);
  } catch {
    throw new UserError(`the working directory ${workdir} does not exist — create it, or pass an existing folder with --workdir`);
  }
  if (!stat.isDirectory()) throw new UserError(`the working directory ${workdir} is not a folder — pass a folder with --workdir`);
}

/** Starts a new run and drives it until it is done, needs a human, fails, or is interrupted. */
export async function runTask(options: StartOptions): Promise<RunResult> {
  const config = validateConfig(options.config ?? {});
  if (!options.task.trim()) throw new UserError('the task is empty — say what the agent should do with --task "..."');
  const workdir = resolve(options.workdir ?? process.cwd());
  checkWorkdir(workdir);
  const agent = options.agent ?? agentFromConfig(config);
  agent.preflight?.();
  const store = RunStore.open(options.storeDir ?? config.store.dir);
  const runId = options.runId ?? newRunId();
  const task: TaskSpec = {
    text: options.task,
    workdir,
    checks: [...config.task.checks, ...(options.checks ?? [])],
    requiredMarkers: config.task.required_markers,
  };
  const local = config.agent.local;
  const input: TaskInput = {
    runId,
    task,
    sessionId: local.session_id ?? randomUUID(),
    sessionStrategy: local.session_strategy,
    retry: retryPolicyFromConfig(local),
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
      input: input as unknown as Record<string, unknown>,
      agent: agent instanceof ClaudeCodeAgent ? { name: agent.name, command: agent.options.command, env: agent.options.env } : { name: agent.name },
    });
  } catch (error) {
    await inspection.close();
    throw error;
  }
  return drive({ ...options, config, agent, store, handle, inspection }, { input });
}

/**
 * Continues a run from its last persisted snapshot (after a crash, Ctrl-C, a pause, or with a human's answer).
 * A finished run is not driven again: its result is returned as it is.
 */
export async function resumeRun(runId: string, options: EngineOptions & { event?: TaskEvent } = {}): Promise<RunResult> {
  const store = RunStore.open(options.storeDir ?? options.config?.store.dir ?? '.obra', { create: false });
  const handle = store.openRun(runId);
  const status = handle.effectiveStatus();
  if (isFinalStatus(status) && !options.event) {
    const result = resultOf(handle, store.dir, handle.db.data.question);
    handle.close();
    return result;
  }
  if (status === 'running') {
    const holder = handle.readLock();
    handle.close();
    throw new UserError(`run ${runId} is still running in process ${holder?.pid ?? '?'} (since ${holder?.since ?? '?'}); wait for it, or stop it first`, 3);
  }
  const { entry: last, lastSeq } = handle.journal.latest();
  if (!last && !Object.keys(handle.db.data.input).length) {
    handle.close();
    throw new UserError(`run ${runId} has no saved state to resume from (${handle.journal.path} holds no transition)`);
  }
  // The run goes on with the config it started with; only the agent may be swapped (e.g. a new binary path).
  const parsed = configSchema.safeParse(handle.db.data.config);
  if (!parsed.success) {
    handle.close();
    const issue = parsed.error.issues[0];
    throw new UserError(`${handle.dir}/run.json holds a config this Obra cannot read (${issue?.path.join('.')}: ${issue?.message}); resume it with the Obra that started it`);
  }
  const config = parsed.data;
  // iterations.jsonl is a copy of what the journal holds: after a power cut, make it agree with the journal.
  if (last) handle.reconcileIterations(last.snapshot);
  const agent = options.agent ?? storedAgent(handle, config, options.agentCommand);
  agent.preflight?.();
  const inspection = await openInspection(options.inspect);
  // Killed before its first transition was on disk: nothing had started (the first lines are synced before any
  // actor works), so the run starts over from its input.
  if (!last) return drive({ ...options, config, agent, store, handle, inspection }, { input: handle.db.data.input as unknown as TaskInput, event: options.event });
  return drive({ ...options, config, agent, store, handle, inspection }, { snapshot: last.snapshot as Snapshot<unknown>, event: options.event, fromSeq: lastSeq });
}

function storedAgent(handle: RunHandle, config: ObraConfig, command: string | undefined): Agent {
  const spec = handle.db.data.agent;
  if (spec.name !== 'claude-code') {
    throw new UserError(`run ${handle.runId} was driven by the in-process agent "${spec.name}"; resume it from your script with resumeRun(runId, { agent })`);
  }
  return new ClaudeCodeAgent({ ...claudeOptionsFromConfig(config), command: command ?? spec.command ?? config.agent.local.command, env: spec.env });
}

/**
 * Sends a person's answer to a run waiting in `awaitingHuman`, then drives it on. The saved state decides, not
 * the status: a run killed just as it started waiting shows `interrupted`, and can be answered all the same.
 */
export async function answerRun(runId: string, answer: string, options: EngineOptions & { allow?: string[] } = {}): Promise<RunResult> {
  const allow = (options.allow ?? []).map((rule) => rule.trim());
  for (const rule of allow) {
    const problem = ruleProblem(rule);
    if (problem) throw new UserError(`--allow ${problem}`);
  }
  if (!answer.trim() && !allow.length) throw new UserError('the answer is empty — write what the agent should do next, or grant what it was refused with --allow "<rule>"');
  const store = RunStore.open(options.storeDir ?? options.config?.store.dir ?? '.obra', { create: false });
  const handle = store.openRun(runId);
  const status = handle.effectiveStatus();
  const waiting = status === 'running' ? null : (handle.journal.latest().entry?.task ?? null);
  handle.close();
  if (status === 'running') throw new UserError(`run ${runId} is still running in another process; answer it once it waits for you`, 3);
  if (waiting !== 'awaitingHuman') throw new UserError(`run ${runId} is not waiting for an answer (its status is ${status})`);
  return resumeRun(runId, { ...options, event: { type: 'HUMAN_ANSWER', answer, ...(allow.length ? { allow } : {}) } });
}

interface DriveContext extends EngineOptions {
  config: ObraConfig;
  agent: Agent;
  store: RunStore;
  handle: RunHandle;
  inspection: Inspection;
}

export interface MachineDeps {
  config: ObraConfig;
  agent: Agent;
  now: () => number;
  saveIteration: (r: IterationRecord) => void;
  onAgentProgress?: Parameters<typeof iterationActors>[0]['onAgentProgress'];
  runChecks?: typeof runChecks;
  /** The account's usage limit shared by the store's tasks. */
  limits?: AccountLimits;
  /**
   * Awaited by every invoked actor before it works (the journal writes, or makes durable, the transitions that
   * led to it first). Resolving false stops the actor for good.
   */
  beforeStep?: (src: string, effect: StepEffect) => Promise<boolean>;
}

/**
 * What an actor does outside the engine: an agent call, check commands or an LLM judge act outside the process
 * (what led to them is made durable first); the iteration record goes to the store's own copy (what led to it
 * is written first; a resume makes that copy agree with the journal); the rest is pure computation.
 */
function effectOf(src: string, input: unknown, config: ObraConfig): StepEffect {
  if (src === 'callAgent') return 'outside';
  if (src === 'scoreResponse') return ((input as { task?: { checks?: unknown[] } }).task?.checks?.length ?? 0) > 0 || config.quality.judge.enabled ? 'outside' : 'none';
  return src === 'persistIteration' ? 'store' : 'none';
}

export function buildMachines(deps: MachineDeps) {
  const actors: Record<string, unknown> = iterationActors({
    config: deps.config,
    agent: deps.agent,
    saveIteration: deps.saveIteration,
    onAgentProgress: deps.onAgentProgress,
    checks: deps.runChecks,
    limits: deps.limits,
    now: deps.now,
  });
  const { beforeStep } = deps;
  if (beforeStep) {
    for (const [src, logic] of Object.entries(actors)) {
      const work = (logic as { config: (args: { input: unknown }) => Promise<unknown> }).config;
      actors[src] = fromPromise<unknown, unknown>(async (args) => {
        // Stopped (the journal failed): never resolve; the runner stops the actor.
        if (!(await beforeStep(src, effectOf(src, args.input, deps.config)))) return new Promise(() => {});
        return work(args as never);
      });
    }
  }
  const iteration = createIterationMachine(deps.now).provide({ actors: actors as never });
  return createTaskMachine(deps.now).provide({ actors: { iteration } });
}

async function drive(ctx: DriveContext, start: { input?: TaskInput; snapshot?: Snapshot<unknown>; event?: TaskEvent; fromSeq?: number }): Promise<RunResult> {
  const { handle, config, agent } = ctx;
  const clock = ctx.clock ?? systemClock;
  const emit = ctx.onEvent ?? (() => {});
  try {
    handle.acquireLock();
    handle.update({ status: 'running', reason: '', question: null, finishedAt: null });
  } catch (error) {
    handle.releaseLock();
    handle.close();
    await ctx.inspection.close();
    throw error;
  }
  emit({ type: 'run-started', runId: handle.runId, resumed: !start.input, store: ctx.store.dir });

  let actor!: AnyActorRef;
  let stopped = false;
  let failStorage: (error: Error) => void = () => {};
  // One time per synchronous burst: a transition's actions and its journal line read the same clock value, so
  // replay (which sets its clock to each line's time) computes the very same times.
  const now = burstTime(clock);
  const recorder = new TransitionRecorder(handle.journal, now, () => actor, {
    durability: ctx.durability ?? config.store.sync,
    onCommit: ctx.onJournalCommit,
    onFailure: (error) => failStorage(error),
    stallAt: process.env.OBRA_TEST_STALL_AT || null,
  });
  const progress = new ProgressObserver(emit, agent);

  const machine = buildMachines({
    config,
    agent,
    now,
    limits: new AccountLimits(join(ctx.store.dir, 'limits.json')),
    runChecks: ctx.runChecks,
    beforeStep: (_src, effect) => recorder.beforeStep(effect),
    saveIteration: (record) => {
      // A `persisting` restored after a crash runs again: the record is kept once, and announced once.
      try {
        if (handle.appendIteration(record)) emit({ type: 'iteration-done', record });
      } catch (error) {
        // A full or read-only disk is not the iteration's fault: stop, resumable, instead of failing the run.
        failStorage(error as Error);
        throw error;
      }
    },
    onAgentProgress: (progressEvent, input) => emit({ type: 'agent-progress', index: input.index, progress: progressEvent }),
  });

  if (start.snapshot) {
    // Recorded before anything runs again: where the run was restored from, and which actors start over
    // (an agent call in flight is issued again on the same session: at-least-once).
    recorder.marker({ type: 'obra.resume', fromSeq: start.fromSeq ?? null, restarted: pendingActors(start.snapshot), pid: process.pid });
    handle.journal.restart();
  }
  actor = createActor(machine, {
    // The input is only read for a fresh start; a restored snapshot carries its own context.
    input: start.input as TaskInput,
    snapshot: start.snapshot as never,
    clock: clock as never,
    inspect: (event) => {
      if (!stopped) progress.observe(event, recorder.observe(event));
      ctx.inspection.inspect?.(event);
    },
  });

  return new Promise<RunResult>((resolvePromise, rejectPromise) => {
    let detachControl = () => {};
    const stop = () => {
      stopped = true;
      detachControl();
      progress.dispose();
      ctx.signal?.removeEventListener('abort', onAbort);
      actor.stop();
    };
    const finish = (status: RunStatus, reason: string, question: string | null = null) => {
      if (stopped) return;
      // Everything up to the last transition is on disk before the run is marked and the lock let go.
      if (status === 'interrupted') recorder.marker({ type: 'obra.interrupted', reason });
      else recorder.commit(true);
      if (recorder.failure) return;
      try {
        handle.syncIterations();
      } catch (error) {
        failStorage(error as Error);
        return;
      }
      stop();
      const taskContext = (actor.getSnapshot() as { context: TaskContext }).context;
      try {
        handle.update({
          status,
          reason,
          question,
          sessionId: taskContext.sessionId,
          ...handle.totalsFromRecords(),
          finishedAt: isFinalStatus(status) ? new Date().toISOString() : null,
        });
      } catch (error) {
        handle.releaseLock();
        handle.close();
        void ctx.inspection.close().finally(() => rejectPromise(error));
        return;
      }
      handle.releaseLock();
      handle.close();
      emit({ type: 'run-finished', runId: handle.runId, status, reason });
      const result = resultOf(handle, ctx.store.dir, question);
      // The inspector gets the run's last events before the caller hears it is over.
      void ctx.inspection.close().finally(() => resolvePromise(result));
    };
    failStorage = (error) => {
      if (stopped) return;
      stop();
      // The journal could not be written: the run stops at its last saved state and stays resumable.
      handle.releaseLock();
      handle.close();
      const message = `${error.message}; run ${handle.runId} stopped at its last saved state — \`obra resume ${handle.runId}\` continues it once this is fixed`;
      void ctx.inspection.close().finally(() => rejectPromise(new UserError(message, 1)));
    };
    // Restored runs may start in a waiting state: judge only after the resume events were delivered.
    let ready = false;
    let judging = false;
    const settle = () => {
      if (!ready || judging) return;
      // Observers hear of a transition before it is inspected (and journaled): judge once that is done.
      judging = true;
      queueMicrotask(() => {
        judging = false;
        if (stopped) return;
        const snapshot = actor.getSnapshot() as { status: string; output?: TaskOutput; error?: unknown; context: TaskContext; matches(state: string): boolean };
        if (snapshot.status === 'done') {
          const output = snapshot.output as TaskOutput;
          finish(output.status, output.reason);
        } else if (snapshot.status === 'error') {
          finish('failed', `the engine stopped on an internal error: ${String(snapshot.error)}`);
        } else if (snapshot.matches('awaitingHuman')) {
          finish('escalated', snapshot.context.reason ?? 'a human decision is needed', snapshot.context.question);
        } else if (snapshot.matches('paused')) {
          finish('paused', `${snapshot.context.reason ?? 'paused for review'}; \`obra resume <runId>\` continues`);
        }
      });
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
      const child = (actor.getSnapshot() as { children: Record<string, AnyActorRef | undefined> }).children.iteration;
      if (child?.getSnapshot().value === 'retryingSessionLock') child.send({ type: 'RESUMED' });
      const task = actor.getSnapshot() as { matches(state: string): boolean };
      if (task.matches('waitingForUsageLimit')) actor.send({ type: 'RESUMED' });
      if (task.matches('paused')) actor.send({ type: 'CONTINUE' });
    }
    if (start.event && !stopped) actor.send(start.event);
    ready = true;
    if (ctx.signal?.aborted) onAbort();
    settle();
  });
}

/** `clock.now()`, read once per synchronous burst of the engine and held until the burst ends. */
function burstTime(clock: Clock): () => number {
  let held: number | null = null;
  return () => {
    if (held === null) {
      held = clock.now();
      queueMicrotask(() => {
        held = null;
      });
    }
    return held;
  };
}

/** The invoked actors of a persisted snapshot that a restore starts again (their work was in flight). */
function pendingActors(snapshot: unknown): string[] {
  const out: string[] = [];
  const visit = (node: unknown) => {
    const children = (node as { children?: Record<string, { src?: unknown; snapshot?: { status?: string; children?: unknown } }> }).children ?? {};
    for (const child of Object.values(children)) {
      if (child?.snapshot?.status !== 'active') continue;
      if (child.snapshot.children) visit(child.snapshot);
      else out.push(String(child.src));
    }
  };
  visit(snapshot);
  return out;
}

/** Turns the journaled transitions into progress events (the CLI's lines, the retry warnings). */
class ProgressObserver {
  private lastIterationState: string | null = null;
  private releaseListener: (() => void) | null = null;

  constructor(
    private readonly emit: (event: EngineEvent) => void,
    private readonly agent: Agent,
  ) {}

  observe(event: InspectionEvent, step: { actor: 'task' | 'iteration'; task: unknown; at: number } | null): void {
    if (!step || event.type !== '@xstate.snapshot') return;
    const at = step.at;
    if (step.actor === 'task') {
      const context = (event.snapshot as unknown as { context: TaskContext }).context;
      this.emit({ type: 'state', actor: 'task', index: context.iterations, state: String(step.task), at });
      const limit = context.usageLimit;
      if (step.task === 'waitingForUsageLimit' && limit && limit.resetsAt !== null) {
        this.emit({ type: 'usage-limit', index: context.iterations + 1, limitType: limit.limitType, resetsAt: limit.resetsAt, dueAt: limit.dueAt, message: limit.message });
      }
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
  }

  dispose(): void {
    this.releaseListener?.();
    this.releaseListener = null;
  }
}
