import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TaskEvent } from '../../machines/task.machine.js';
import type { Agent, AgentCallRequest } from '../agents/agent.js';
import { UserError } from '../core/errors.js';
import type { AgentCallRecord, RunStatus } from '../core/types.js';
import { writeFileDurably } from '../store/durable-file.js';
import { RunStore } from '../store/run-store.js';

/**
 * Pausing and cancelling a run.
 *
 * In process: pass a `RunControl` as the `control` option of `runTask` / `resumeRun` and call `pause()` or
 * `cancel()`; it sends PAUSE / CANCEL to the task machine (queued until the run starts).
 *
 * From another process (`obra pause <runId>`, `obra cancel <runId>`, `requestPause`, `requestCancel`): the
 * process driving a run holds `runs/<id>/lock` and watches `runs/<id>/control.json`. A request is written there
 * atomically; the driver picks it up within a poll interval (250 ms), sends the event, and deletes the file as
 * its acknowledgement. The requester then waits for `run.json` to show the outcome.
 *
 * - PAUSE takes effect when the current iteration has been persisted (the task goes to `paused`;
 *   `obra resume` continues it). A run at rest (escalated, paused, interrupted) has nothing to pause.
 * - CANCEL takes effect at once: the iteration in flight is stopped (its agent process tree is killed), the
 *   final state is journaled and the run ends `cancelled`. A run at rest is cancelled by this process itself:
 *   it takes the lock, restores the run with an agent that does nothing, and sends CANCEL.
 */

const CONTROL_FILE = 'control.json';
export const CONTROL_POLL_MS = 250;

export interface ControlRequest {
  id: string;
  action: 'pause' | 'cancel';
  reason?: string;
  requestedAt: string;
  pid: number;
}

/** An in-process handle on a run's PAUSE / CANCEL events. Events sent before the run starts are queued. */
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

/**
 * What the runner calls once its actor has started: connects the optional in-process control and watches the
 * run's control file for requests from other processes. Returns the function that disconnects both.
 */
export function attachRunControl(options: { runDir: string; control?: RunControl; send: (event: TaskEvent) => void; pollMs?: number }): () => void {
  const detach = options.control?.attach(options.send) ?? (() => {});
  const since = Date.now();
  const path = join(options.runDir, CONTROL_FILE);
  const poll = () => {
    const request = readRequest(path);
    if (!request) return;
    rmSync(path, { force: true });
    // A request older than this driver was left by a requester that gave up (or crashed): ignore it.
    if (Date.parse(request.requestedAt) < since - 1000) return;
    options.send(request.action === 'pause' ? { type: 'PAUSE', reason: request.reason } : { type: 'CANCEL', reason: request.reason });
  };
  const timer = setInterval(poll, options.pollMs ?? CONTROL_POLL_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    detach();
  };
}

function readRequest(path: string): ControlRequest | null {
  if (!existsSync(path)) return null;
  try {
    const json = JSON.parse(readFileSync(path, 'utf8')) as ControlRequest;
    return json.action === 'pause' || json.action === 'cancel' ? json : null;
  } catch {
    return null;
  }
}

export interface ControlOptions {
  storeDir: string;
  reason?: string;
  /** How long to wait for the driving process to act (ms). */
  waitMs?: number;
  /** For `pause`: also wait until the run is actually paused (the end of the current iteration). */
  untilPaused?: boolean;
}

export interface ControlOutcome {
  runId: string;
  /** The run's status when the command returned. */
  status: RunStatus;
  /** What happened, in one line for people. */
  message: string;
}

const FINISHED: RunStatus[] = ['done', 'failed', 'max_iterations', 'budget_exceeded', 'cancelled'];

/** Asks the process driving `runId` to pause it after the current iteration. */
export async function requestPause(runId: string, options: ControlOptions): Promise<ControlOutcome> {
  const { status, handleDir } = statusOf(runId, options.storeDir);
  if (status === 'paused') return { runId, status, message: `run ${runId} is already paused; \`obra resume ${runId}\` continues it` };
  if (status !== 'running') throw new UserError(`run ${runId} is not running (its status is ${status}); there is nothing to pause`);
  const request = writeRequest(handleDir, 'pause', options.reason);
  const acked = await waitFor(() => !existsSync(join(handleDir, CONTROL_FILE)) || statusOf(runId, options.storeDir).status !== 'running', options.waitMs ?? 5000);
  const now = statusOf(runId, options.storeDir).status;
  if (!acked && now === 'running') {
    removeIfOurs(handleDir, request.id);
    throw new UserError(`run ${runId} did not pick up the pause request within ${((options.waitMs ?? 5000) / 1000).toFixed(0)}s (is its process ${lockHolder(handleDir)} stuck?)`, 1);
  }
  if (now === 'running' && options.untilPaused) {
    await waitFor(() => statusOf(runId, options.storeDir).status !== 'running', Infinity);
  }
  const final = statusOf(runId, options.storeDir).status;
  removeIfOurs(handleDir, request.id);
  if (final === 'running') return { runId, status: final, message: `pause requested: run ${runId} pauses when its current iteration is persisted` };
  if (final === 'paused') return { runId, status: final, message: `run ${runId} is paused; \`obra resume ${runId}\` continues it` };
  return { runId, status: final, message: `run ${runId} stopped as ${final} before the pause took effect` };
}

/** Cancels `runId`: through the driving process when one runs it, else directly. */
export async function requestCancel(runId: string, options: ControlOptions): Promise<ControlOutcome> {
  const { status, handleDir } = statusOf(runId, options.storeDir);
  if (FINISHED.includes(status)) throw new UserError(`run ${runId} has already finished (its status is ${status}); there is nothing to cancel`);
  if (status === 'running') {
    const request = writeRequest(handleDir, 'cancel', options.reason);
    await waitFor(() => statusOf(runId, options.storeDir).status !== 'running', options.waitMs ?? 15_000);
    removeIfOurs(handleDir, request.id);
    const after = statusOf(runId, options.storeDir).status;
    if (after === 'cancelled') return { runId, status: after, message: `run ${runId} is cancelled` };
    if (after === 'running') throw new UserError(`run ${runId} did not stop within ${((options.waitMs ?? 15_000) / 1000).toFixed(0)}s of the cancel request (process ${lockHolder(handleDir)})`, 1);
    if (FINISHED.includes(after)) return { runId, status: after, message: `run ${runId} finished as ${after} before the cancel took effect` };
    // It came to rest (paused, escalated, interrupted) just before the request was read: cancel it here.
  }
  const control = new RunControl();
  control.cancel(options.reason ?? 'cancelled by the user');
  // Imported here: the runner imports this module (attachRunControl), so a static import would be a cycle.
  const { resumeRun } = await import('../engine/runner.js');
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

function statusOf(runId: string, storeDir: string): { status: RunStatus; handleDir: string } {
  const store = RunStore.open(storeDir, { create: false });
  const handle = store.openRun(runId);
  try {
    return { status: handle.effectiveStatus(), handleDir: handle.dir };
  } finally {
    handle.close();
  }
}

function writeRequest(runDir: string, action: ControlRequest['action'], reason?: string): ControlRequest {
  const request: ControlRequest = { id: randomUUID(), action, reason, requestedAt: new Date().toISOString(), pid: process.pid };
  writeFileDurably(join(runDir, CONTROL_FILE), JSON.stringify(request));
  return request;
}

function removeIfOurs(runDir: string, id: string): void {
  const path = join(runDir, CONTROL_FILE);
  if (readRequest(path)?.id === id) rmSync(path, { force: true });
}

function lockHolder(runDir: string): string {
  try {
    return String((JSON.parse(readFileSync(join(runDir, 'lock'), 'utf8')) as { pid?: number }).pid ?? '?');
  } catch {
    return '?';
  }
}

async function waitFor(condition: () => boolean, timeoutMs: number, everyMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return true;
}
