import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TaskEvent } from '../../../machines/task.machine.js';
import { UserError } from '../../core/errors.js';
import { isFinalStatus, type RunStatus } from '../../core/statuses.js';
import { writeFileDurably, type StoreFs } from '../../store/durable-file.js';
import { RunStore } from '../../store/run-store.js';

/**
 * Pausing and cancelling a run driven by another process (in process: `RunControl`, src/engine/control.ts).
 *
 * From another process (`obra pause <runId>`, `obra cancel <runId>`, `requestPause`, `requestCancel`): the
 * process driving a run holds `runs/<id>/lock` and watches `runs/<id>/control.json`. A request is written there
 * atomically; the driver picks it up within a poll interval (250 ms), sends the event, and deletes the file as
 * its acknowledgement. The requester then waits for `run.json` to show the outcome.
 *
 * - PAUSE takes effect when the current iteration has been persisted (the task goes to `paused`;
 *   `obra resume` continues it). A queued run that has not started is held (marked paused under its lock).
 *   A run at rest (escalated, paused, interrupted) has nothing to pause.
 * - CANCEL takes effect at once: the iteration in flight is stopped (its agent process tree is killed), the
 *   final state is journaled and the run ends `cancelled`. A run at rest is cancelled by this process itself:
 *   it takes the lock, restores the run with an agent that does nothing, and sends CANCEL.
 */

export const CONTROL_FILE = 'control.json';
export const CONTROL_POLL_MS = 250;

export interface ControlRequest {
  id: string;
  action: 'pause' | 'cancel';
  reason?: string;
  requestedAt: string;
  pid: number;
}

/**
 * The files host's control signals: watches the run's control file for requests from other processes and sends
 * them to the task machine. Returns the function that stops watching.
 */
export function watchControlFile(options: { runDir: string; send: (event: TaskEvent) => void; pollMs?: number }): () => void {
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
  return () => clearInterval(timer);
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
  /** The file-system calls of the request's write and the store's (node:fs by default): to observe or fail them. */
  fs?: StoreFs;
}

export interface ControlOutcome {
  runId: string;
  /** The run's status when the command returned. */
  status: RunStatus;
  /** What happened, in one line for people. */
  message: string;
}


/** Asks the process driving `runId` to pause it after the current iteration. */
export async function requestPause(runId: string, options: ControlOptions): Promise<ControlOutcome> {
  let { status, handleDir } = statusOf(runId, options.storeDir);
  if (status === 'paused') return { runId, status, message: `run ${runId} is already paused; \`obra resume ${runId}\` continues it` };
  // A queued task is held where it is: no worker starts it until it is resumed.
  for (let attempt = 0; status === 'queued' && attempt < 40; attempt++) {
    if (holdQueued(runId, options)) return { runId, status: 'paused', message: `run ${runId} is paused before it started; \`obra resume ${runId}\` drives it` };
    // A worker is taking it this instant: once it runs, it is paused as any running run.
    await new Promise((r) => setTimeout(r, 50));
    ({ status, handleDir } = statusOf(runId, options.storeDir));
  }
  if (status !== 'running') throw new UserError(`run ${runId} is not running (its status is ${status}); there is nothing to pause`);
  const request = writeRequest(handleDir, 'pause', options.reason, options.fs);
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

/**
 * Marks a queued run paused, under its lock (a worker that takes the run first has it; one that read it queued
 * before sees it changed once it has the lock, and leaves it). False when a worker holds it or it moved on.
 */
export function holdQueued(runId: string, options: ControlOptions): boolean {
  const handle = RunStore.open(options.storeDir, { create: false }).openRun(runId);
  try {
    handle.acquireLock();
  } catch (error) {
    handle.close();
    if (error instanceof UserError && error.exitCode === 3) return false;
    throw error;
  }
  try {
    if (handle.load().file.status !== 'queued') return false;
    handle.update({ status: 'paused', reason: options.reason ? `paused before it started: ${options.reason}` : 'paused before it started' });
    return true;
  } finally {
    handle.releaseLock();
    handle.close();
  }
}

export function statusOf(runId: string, storeDir: string): { status: RunStatus; handleDir: string } {
  const store = RunStore.open(storeDir, { create: false });
  const handle = store.openRun(runId);
  try {
    return { status: handle.effectiveStatus(), handleDir: handle.dir };
  } finally {
    handle.close();
  }
}

export function writeRequest(runDir: string, action: ControlRequest['action'], reason?: string, fs?: StoreFs): ControlRequest {
  const request: ControlRequest = { id: randomUUID(), action, reason, requestedAt: new Date().toISOString(), pid: process.pid };
  writeFileDurably(join(runDir, CONTROL_FILE), JSON.stringify(request), fs);
  return request;
}

export function removeIfOurs(runDir: string, id: string): void {
  const path = join(runDir, CONTROL_FILE);
  if (readRequest(path)?.id === id) rmSync(path, { force: true });
}

export function lockHolder(runDir: string): string {
  try {
    return String((JSON.parse(readFileSync(join(runDir, 'lock'), 'utf8')) as { pid?: number }).pid ?? '?');
  } catch {
    return '?';
  }
}

export async function waitFor(condition: () => boolean, timeoutMs: number, everyMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return true;
}
