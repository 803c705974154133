import { randomBytes, randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { TaskEvent, TaskInput } from '../../../machines/task.machine.js';
import { AccountLimits } from '../../agents/account-limits.js';
import { CallSlots } from '../../agents/call-slots.js';
import type { Agent } from '../../agents/agent.js';
import { agentFor, agentFromSpec, agentSpecOf, claudeOptionsFromConfig, limitsFileOf, type AgentCommand } from '../../agents/agent-for.js';
import { costBudgetProblem } from '../../agents/budget-check.js';
import { ruleProblem } from '../../agents/permissions.js';
import { retryPolicyFromConfig } from '../../agents/retry-policy.js';
import { validateConfig } from '../../config/load.js';
import { configSchema, type ObraConfig } from '../../config/schema.js';
import { UserError } from '../../core/errors.js';
import { isFinalStatus } from '../../core/statuses.js';
import type { IterationRecord, TaskSpec } from '../../core/types.js';
import { systemClock, type Clock } from '../../engine/clock.js';
import type { RunControl } from '../../engine/control.js';
import { TaskDrive, type DriveOptions, type DriveStart } from '../../engine/drive.js';
import type { EngineEvent } from '../../engine/events.js';
import type { EngineHost, JournalPort, RunPort } from '../../engine/host.js';
import type { RunResult } from '../../engine/run-result.js';
import { openInspection, type InspectOption } from '../../inspector/engine-hook.js';
import { waitsForAnswer } from '../../persisted/rest.js';
import { restorableSnapshot } from '../../persisted/snapshot.js';
import type { runChecks } from '../../scoring/checks.js';
import type { StoreFs } from '../../store/durable-file.js';
import { refreshOverlap } from '../../queue/overlap.js';
import { eventLogWriter } from '../../store/event-log.js';
import { RunStore, type RunHandle } from '../../store/run-store.js';
import { beginResolutionMerge } from '../../workspace/conflict.js';
import { commitIteration, ensureWorktree, startFromFollowed } from '../../workspace/worktree.js';
import { watchControlFile } from './control-file.js';
import { FilesRun } from './files-run.js';
import { resultOf } from './result.js';

/**
 * Running tasks on this machine, kept in a store folder: `runTask`, `resumeRun`, `answerRun` — the library's
 * entry points and what `obra run`, `obra resume` and `obra answer` call. Each builds the files host (the run's
 * folder, the control file, the store's account limits, the agent) and hands the run to the engine core.
 */

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
   * the Stately inspector on 127.0.0.1 while it runs (see src/inspector/engine-hook.ts).
   */
  inspect?: InspectOption;
  /** Aborting stops the run at once (the agent's process tree is killed); it stays resumable. */
  signal?: AbortSignal;
  /** Replaces the check runner. */
  runChecks?: typeof runChecks;
  /** Pause or cancel the run from this process (`control.pause()`, `control.cancel()`; see src/engine/control.ts). */
  control?: RunControl;
  /** On resume: a binary to use instead of the one the run started with (a string: whatever its agent; or one per kind). */
  agentCommand?: AgentCommand;
  /** When journal entries are made durable (see store.sync): `transition` (default) or `strict`. */
  durability?: DriveOptions['durability'];
  /** Every journal commit's figures (lines, bytes, write and fdatasync time): for benchmarks. */
  onJournalCommit?: DriveOptions['onJournalCommit'];
  /** Wraps the run's journal (instrumentation: counting, delaying or stopping at a chosen entry). */
  journal?: (journal: JournalPort) => JournalPort;
  /** The file-system calls the store makes (node:fs by default): to observe or fail them. */
  fs?: StoreFs;
  /**
   * The cap on agent calls in flight across the store's tasks (default: the run's `agent.max_concurrent_calls`,
   * else its `queue.concurrency`). A worker passes its own, from the config it runs with.
   */
  maxConcurrentCalls?: number;
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

/** The agent `agent.kind` names, from its section of the config. */
export function agentFromConfig(config: ObraConfig): Agent {
  return agentFor(config.agent.kind, config);
}

export { claudeOptionsFromConfig };

/** The task machine's input for a new run, from the config. */
export function taskInputOf(runId: string, task: TaskSpec, config: ObraConfig): TaskInput {
  const local = config.agent.local;
  return {
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
  // An in-process agent reports what it costs; a CLI agent of a kind that reports tokens only needs a price.
  const budget = options.agent ? null : costBudgetProblem(config, config.agent.kind);
  if (budget) throw new UserError(budget);
  const agent = options.agent ?? agentFromConfig(config);
  agent.preflight?.();
  const store = RunStore.open(options.storeDir ?? config.store.dir, { fs: options.fs });
  const runId = options.runId ?? newRunId();
  const task: TaskSpec = {
    text: options.task,
    workdir,
    checks: [...config.task.checks, ...(options.checks ?? [])],
    requiredMarkers: config.task.required_markers,
  };
  const input = taskInputOf(runId, task, config);
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
      agent: agentSpecOf(agent),
    });
  } catch (error) {
    await inspection.close();
    throw error;
  }
  return driveInStore({ ...options, config, agent, store, handle, inspection }, { input });
}

/**
 * Continues a run from its last persisted snapshot (after a crash, Ctrl-C, a pause, or with a human's answer).
 * A finished run is not driven again: its result is returned as it is.
 */
export async function resumeRun(runId: string, options: EngineOptions & { event?: TaskEvent; /** @internal a worker's: an ended run is another worker's, not a result */ drivableOnly?: boolean } = {}): Promise<RunResult> {
  const store = RunStore.open(options.storeDir ?? options.config?.store.dir ?? '.obra', { create: false, fs: options.fs });
  const handle = store.openRun(runId);
  const status = handle.effectiveStatus();
  // A worker starts only what waits for a worker: a run that ended, was paused or came to rest since it was
  // listed is another's, not a result (a running one is refused below, as for anyone).
  if (options.drivableOnly && status !== 'queued' && status !== 'interrupted' && status !== 'running') {
    handle.close();
    throw new UserError(isFinalStatus(status) ? `run ${runId} has ended (${status}) meanwhile` : `run ${runId} is ${status} now; a worker leaves it be`, 3);
  }
  if (isFinalStatus(status) && !options.event) {
    const result = resultOf(handle, store.dir, handle.file.question);
    handle.close();
    return result;
  }
  if (status === 'running') {
    const holder = handle.readLock();
    handle.close();
    throw new UserError(`run ${runId} is still running in process ${holder?.pid ?? '?'} (since ${holder?.since ?? '?'}); wait for it, or stop it first`, 3);
  }
  const { entry: last, lastSeq } = handle.journal.latest();
  if (!last && !Object.keys(handle.file.input).length) {
    handle.close();
    throw new UserError(`run ${runId} has no saved state to resume from (${handle.journal.path} holds no transition)`);
  }
  // The run goes on with the config it started with; only the agent may be swapped (e.g. a new binary path).
  const parsed = configSchema.safeParse(handle.file.config);
  if (!parsed.success) {
    handle.close();
    const issue = parsed.error.issues[0];
    throw new UserError(`${handle.dir}/run.json holds a config this Obra cannot read (${issue?.path.join('.')}: ${issue?.message}); resume it with the Obra that started it`);
  }
  const config = parsed.data;
  const restorable = last ? restorableSnapshot(last.snapshot) : null;
  if (restorable && !restorable.ok) {
    handle.close();
    throw new UserError(`${handle.journal.path}: the last saved state cannot be restored: ${restorable.problem}; resume it with the Obra that wrote it`);
  }
  // iterations.jsonl is a copy of what the journal holds: after a power cut, make it agree with the journal.
  if (last) handle.reconcileIterations(last.snapshot);
  const agent = options.agent ?? storedAgent(handle, config, options.agentCommand);
  agent.preflight?.();
  const inspection = await openInspection(options.inspect);
  const ctx = { ...options, config, agent, store, handle, inspection };
  // Killed before its first transition was on disk: nothing had started (the first lines are synced before any
  // actor works), so the run starts over from its input.
  if (!restorable) return driveInStore(ctx, { input: handle.file.input as unknown as TaskInput, event: options.event });
  return driveInStore(ctx, { snapshot: restorable.snapshot, event: options.event, fromSeq: lastSeq });
}

function storedAgent(handle: RunHandle, config: ObraConfig, command: AgentCommand | undefined): Agent {
  return agentFromSpec(handle.file.agent, config, command, handle.runId);
}

/**
 * Sends a person's answer to a run waiting in `awaitingHuman`, then drives it on; `allow` grants permission
 * rules for the rest of the run. The saved state decides, not the status: a run killed just as it started
 * waiting shows `interrupted`, and can be answered all the same.
 */
export async function answerRun(runId: string, answer: string, options: EngineOptions & { allow?: string[] } = {}): Promise<RunResult> {
  const allow = checkAnswer(runId, answer, { storeDir: options.storeDir ?? options.config?.store.dir ?? '.obra', allow: options.allow });
  return resumeRun(runId, { ...options, event: { type: 'HUMAN_ANSWER', answer, ...(allow.length ? { allow } : {}) } });
}

/**
 * Everything `answerRun` refuses, checked without driving anything (the HTTP API answers before the run goes
 * on): the rules, an empty answer, a run that does not wait. Returns the rules, trimmed.
 */
export function checkAnswer(runId: string, answer: string, options: { storeDir: string; allow?: string[] }): string[] {
  const allow = (options.allow ?? []).map((rule) => rule.trim());
  for (const rule of allow) {
    const problem = ruleProblem(rule);
    if (problem) throw new UserError(`--allow ${problem}`);
  }
  if (!answer.trim() && !allow.length) throw new UserError('the answer is empty — write what the agent should do next, or grant what it was refused with --allow "<rule>"');
  const store = RunStore.open(options.storeDir, { create: false });
  const handle = store.openRun(runId);
  const status = handle.effectiveStatus();
  const waiting = status !== 'running' && waitsForAnswer(handle.journal.latest().entry?.snapshot);
  handle.close();
  if (status === 'running') throw new UserError(`run ${runId} is still running in another process; answer it once it waits for you`, 3);
  if (!waiting) throw new UserError(`run ${runId} is not waiting for an answer (its status is ${status})`);
  return allow;
}

interface StoreDrive extends EngineOptions {
  config: ObraConfig;
  agent: Agent;
  store: RunStore;
  handle: RunHandle;
  inspection: Awaited<ReturnType<typeof openInspection>>;
}

/** The merge commit that brought a queued run's branch into its base branch (`obra merge`), if it was merged. */
function mergeOf(store: RunStore, runId: string): string | null {
  try {
    return store.peekStatus(runId).file.queue?.merged?.commit ?? null;
  } catch {
    return null;
  }
}

/** The files host for one run, handed to the engine core. */
async function driveInStore(ctx: StoreDrive, start: DriveStart): Promise<RunResult> {
  const space = ctx.handle.file.queue?.workspace;
  // A queued task's own worktree: found again, or made anew from its branch (first moved to where the run it
  // follows ended, if it builds on that one); its changes committed after every iteration.
  const workspace =
    space?.kind === 'worktree'
      ? {
          prepare: async () => {
            const queue = ctx.handle.file.queue;
            const moved = await startFromFollowed(space, queue?.after ? mergeOf(ctx.store, queue.after) : null);
            if (moved && queue) await ctx.handle.updateInBackground({ queue: { ...queue, workspace: moved } });
            const path = await ensureWorktree(space);
            // A conflict's resolution works in the merge it resolves: the task's branch merged into the base,
            // stopped at the conflicts (started once; a worktree found again keeps what the agent did).
            const resolves = queue?.resolves;
            if (resolves) await beginResolutionMerge(path, { tip: resolves.tip, baseCommit: space.baseCommit, message: `Merge ${resolves.branch} (obra run ${resolves.runId})` });
            return path;
          },
          // Then what the branch now overlaps with (the base, the other unmerged branches): `obra status` warns early.
          afterIteration: async (record: IterationRecord) => {
            const committed = await commitIteration(space.path, ctx.handle.runId, record);
            await refreshOverlap(ctx.store, ctx.handle.runId, ctx.handle.file.queue?.workspace.kind === 'worktree' ? (ctx.handle.file.queue.workspace as typeof space) : space);
            return committed;
          },
        }
      : null;
  const files = new FilesRun(ctx.handle, ctx.store.dir, workspace);
  const host: EngineHost = {
    run: ctx.journal ? withJournal(files, ctx.journal(files.journal)) : files,
    clock: ctx.clock ?? systemClock,
    effects: {
      agent: ctx.agent,
      runChecks: ctx.runChecks,
      // One file per vendor's account: a usage limit of one parks that vendor's tasks only.
      limits: new AccountLimits(join(ctx.store.dir, limitsFileOf(ctx.handle.file.agent)), ctx.store.fs),
      slots: new CallSlots(join(ctx.store.dir, 'calls'), ctx.maxConcurrentCalls ?? ctx.config.agent.max_concurrent_calls ?? ctx.config.queue.concurrency),
    },
    // PAUSE / CANCEL from another process (`obra pause`, `obra cancel`): runs/<id>/control.json.
    control: (send) => watchControlFile({ runDir: ctx.handle.dir, send }),
  };
  // The run page's live stream tails this log (src/store/event-log.ts).
  const logEvent = eventLogWriter(ctx.handle.dir);
  const onEvent = (event: EngineEvent) => {
    logEvent(event);
    ctx.onEvent?.(event);
  };
  try {
    return await new TaskDrive(host, start, {
      config: ctx.config,
      onEvent,
      inspect: ctx.inspection.inspect,
      signal: ctx.signal,
      control: ctx.control,
      durability: ctx.durability,
      onJournalCommit: ctx.onJournalCommit,
    }).run();
  } finally {
    // The inspector gets the run's last events before the caller hears it is over.
    await ctx.inspection.close();
  }
}

/** The same run, its journal wrapped. */
function withJournal(run: RunPort, journal: JournalPort): RunPort {
  return {
    runId: run.runId,
    where: run.where,
    journal,
    savesOutside: run.savesOutside,
    begin: () => run.begin(),
    saveIteration: (record) => run.saveIteration(record),
    settle: (outcome) => run.settle(outcome),
    abandon: () => run.abandon(),
  };
}
