import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Agent, AgentCallRequest } from '../../src/agents/agent.js';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import { RunControl, requestCancel, requestPause } from '../../src/index.js';
import { UserError } from '../../src/core/errors.js';
import type { AgentCallRecord } from '../../src/core/types.js';
import { resumeRun, runTask } from '../../src/index.js';
import { CONTROL_FILE, holdQueued } from '../../src/hosts/files/control-file.js';
import { recordingFs, replacementsOf } from '../helpers/store-fs.js';
import { waitFor } from '../helpers/wait-for.js';
import { harness } from './helpers.js';

/** An agent whose calls wait until the test releases them (or the run aborts them). */
class GatedAgent implements Agent {
  readonly name = 'gated';
  readonly inner: ScriptedAgent;
  started: AgentCallRequest[] = [];
  aborted = 0;
  private release: (() => void)[] = [];
  private waiters: (() => void)[] = [];

  constructor(replies: ConstructorParameters<typeof ScriptedAgent>[0]) {
    this.inner = new ScriptedAgent(replies);
  }

  call(request: AgentCallRequest): Promise<AgentCallRecord> {
    this.started.push(request);
    this.waiters.splice(0).forEach((w) => w());
    return new Promise((resolve, reject) => {
      request.signal?.addEventListener('abort', () => {
        this.aborted += 1;
        reject(new Error('aborted'));
      });
      this.release.push(() => void this.inner.call(request).then(resolve));
    });
  }

  /** Resolves once `n` calls have started. */
  async whenCalls(n: number): Promise<void> {
    while (this.started.length < n) await new Promise<void>((r) => this.waiters.push(r));
  }

  releaseOne(): void {
    this.release.shift()?.();
  }
}

const step = (n: number) => ({ answer: `Finished step ${n} of the greet work.\nSTATUS: CONTINUE`, turns: 2 });
const done = { answer: 'Finished the greet function and documented it; complete.\nSTATUS: DONE', turns: 2 };

/** A run paused by request (in process) while its first iteration was running, once that iteration is persisted. */
async function pausedAfterIterationOne() {
  const agent = new GatedAgent([step(1), done]);
  const h = harness(agent);
  const control = new RunControl();
  const running = runTask({ ...h.options({ control }), task: 'Add a greet function' });
  await agent.whenCalls(1);
  control.pause('lunch break');
  agent.releaseOne();
  return { agent, h, paused: await running };
}

describe('pause and cancel', () => {
  it('PAUSE (in process) waits for the running iteration to be persisted, then pauses; resume continues', async () => {
    const { agent, h, paused } = await pausedAfterIterationOne();

    expect(paused.status).toBe('paused');
    expect(paused.reason).toMatch(/^paused by request after iteration 1/);
    expect(h.records(paused.runId)).toHaveLength(1);
    expect(h.trace.steps.slice(-2).map((s) => [s.value, s.guards])).toEqual([
      ['checkingBudgets', []],
      ['paused', ['pauseRequested']],
    ]);

    const after = harness(agent);
    const resuming = resumeRun(paused.runId, { storeDir: h.store, agent, inspect: after.trace.inspect });
    await agent.whenCalls(2);
    agent.releaseOne();
    const finished = await resuming;
    expect(finished.status).toBe('done');
    expect(after.trace.steps[0]).toMatchObject({ event: 'RESUMED', value: 'running' });
  });

  it('CANCEL (in process) stops the iteration in flight at once: the agent call is aborted and the run ends cancelled', async () => {
    const agent = new GatedAgent([step(1)]);
    const h = harness(agent);
    const control = new RunControl();
    const running = runTask({ ...h.options({ control }), task: 'Add a greet function' });
    await agent.whenCalls(1);
    control.cancel('the requirement changed');
    const result = await running;

    expect(result.status).toBe('cancelled');
    expect(result.reason).toBe('the requirement changed');
    expect(agent.aborted).toBe(1);
    expect(h.trace.steps.at(-1)).toMatchObject({ event: 'CANCEL', value: 'cancelled' });
    expect(h.runFile(result.runId)).toMatchObject({ status: 'cancelled', reason: 'the requirement changed' });
    expect(h.runFile(result.runId).finishedAt).not.toBeNull();
    expect(h.journal(result.runId).at(-1)).toMatchObject({ task: 'cancelled', snapshot: { status: 'done', output: { status: 'cancelled' } } });
  });

  it('a CANCEL queued before the run starts is delivered first', async () => {
    const h = harness([step(1)]);
    const control = new RunControl();
    control.cancel('changed my mind');
    const result = await runTask({ ...h.options({ control }), task: 'Add a greet function' });
    expect(result.status).toBe('cancelled');
    expect(result.reason).toBe('changed my mind');
  });

  it('from another process: requestPause / requestCancel go through runs/<id>/control.json and the driver acknowledges', async () => {
    const agent = new GatedAgent([step(1), step(2)]);
    const h = harness(agent);
    const running = runTask({ ...h.options(), task: 'Add a greet function' });
    await agent.whenCalls(1);
    const runId = h.events.find((e) => e.type === 'run-started')!.runId as string;

    // The driver picks the request up within its poll interval and deletes the file as the acknowledgement.
    const pausing = requestPause(runId, { storeDir: h.store, reason: 'review please', waitMs: 3000 });
    const outcome = await pausing;
    expect(outcome).toMatchObject({ runId, status: 'running' });
    expect(outcome.message).toMatch(/pause requested: run .* pauses when its current iteration is persisted/);
    expect(existsSync(join(h.store, 'runs', runId, 'control.json'))).toBe(false);
    agent.releaseOne();
    const paused = await running;
    expect(paused.status).toBe('paused');
    expect(paused.reason).toMatch(/^paused by request after iteration 1/);

    // Resume in the background, then cancel it from "outside" while its agent call is in flight.
    const resumed = resumeRun(runId, { storeDir: h.store, agent });
    await agent.whenCalls(2);
    const cancelled = await requestCancel(runId, { storeDir: h.store, reason: 'not needed any more' });
    expect(cancelled).toMatchObject({ runId, status: 'cancelled', message: `run ${runId} is cancelled` });
    expect((await resumed).status).toBe('cancelled');
    expect(agent.aborted).toBe(1);
    expect(h.runFile(runId).reason).toBe('not needed any more');
  });

  it('a run at rest (waiting for a human) is cancelled directly: restored, CANCEL sent, no agent started', async () => {
    const question = 'Which database should I migrate?';
    const h = harness([question, question, question]);
    const escalated = await runTask({ ...h.options(), task: 'Migrate the database' });
    expect(escalated.status).toBe('escalated');
    const callsBefore = h.agent.requests.length;

    const outcome = await requestCancel(escalated.runId, { storeDir: h.store });
    expect(outcome.status).toBe('cancelled');
    expect(h.agent.requests).toHaveLength(callsBefore);
    const journal = h.journal(escalated.runId);
    // The restored run's one transition: awaitingHuman → cancelled, journaled like any other.
    expect(journal.at(-2)).toMatchObject({ task: 'awaitingHuman' });
    expect(journal.at(-1)).toMatchObject({ task: 'cancelled', event: { type: 'CANCEL', reason: 'cancelled by the user' } });
    expect(h.runFile(escalated.runId)).toMatchObject({ status: 'cancelled', reason: 'cancelled by the user', iterations: 3 });
  });

  it('a paused run is cancelled without starting another iteration first', async () => {
    const h = harness([step(1), step(2), step(3)], { decision: { checkpoint_every: 1 } });
    const paused = await runTask({ ...h.options(), task: 'Add a greet function' });
    expect(paused.status).toBe('paused');
    const outcome = await requestCancel(paused.runId, { storeDir: h.store, reason: 'enough' });
    expect(outcome.status).toBe('cancelled');
    expect(h.agent.requests).toHaveLength(1);
    expect(h.journal(paused.runId).some((e) => e.task === 'running' && e.event.type === 'CONTINUE')).toBe(false);
  });

  it('refuses clearly: nothing to pause at rest, nothing to cancel once finished', async () => {
    const h = harness([done]);
    const finished = await runTask({ ...h.options(), task: 'Add a greet function' });
    await expect(requestPause(finished.runId, { storeDir: h.store })).rejects.toThrow(UserError);
    await expect(requestPause(finished.runId, { storeDir: h.store })).rejects.toThrow(/is not running \(its status is done\); there is nothing to pause/);
    await expect(requestCancel(finished.runId, { storeDir: h.store })).rejects.toThrow(/has already finished \(its status is done\); there is nothing to cancel/);
    await expect(requestCancel('no-such-run', { storeDir: h.store })).rejects.toThrow(/no run "no-such-run"/);
  });

  it('the request in control.json is replaced durably: data fdatasynced before the rename, the folder fsynced after', async () => {
    const agent = new GatedAgent([step(1), step(2)]);
    const h = harness(agent);
    const running = runTask({ ...h.options(), task: 'Add a greet function' });
    await agent.whenCalls(1);
    const runId = h.events.find((e) => e.type === 'run-started')!.runId as string;
    const controlJson = join(h.store, 'runs', runId, CONTROL_FILE);
    const durable = ['write temp', 'sync temp', 'rename', 'fsync folder'];

    const pausing = recordingFs();
    expect((await requestPause(runId, { storeDir: h.store, waitMs: 3000, fs: pausing.fs })).status).toBe('running');
    expect(replacementsOf(pausing.ops, controlJson)).toEqual([durable]);
    agent.releaseOne();
    expect((await running).status).toBe('paused');

    const resumed = resumeRun(runId, { storeDir: h.store, agent });
    await agent.whenCalls(2);
    const cancelling = recordingFs();
    expect((await requestCancel(runId, { storeDir: h.store, fs: cancelling.fs })).status).toBe('cancelled');
    expect(replacementsOf(cancelling.ops, controlJson)).toEqual([durable]);
    expect((await resumed).status).toBe('cancelled');
  });

  it('a control.json left by a crashed `obra cancel` is dropped by the next driver, not obeyed', async () => {
    const { agent, h, paused } = await pausedAfterIterationOne();
    expect(paused.status).toBe('paused');
    // The requester wrote its request a minute ago, then died before it saw it acknowledged or removed it.
    const controlJson = join(h.store, 'runs', paused.runId, CONTROL_FILE);
    const stale = { id: 'left-by-a-crash', action: 'cancel', reason: 'an old cancel', requestedAt: new Date(Date.now() - 60_000).toISOString(), pid: 1 };
    writeFileSync(controlJson, JSON.stringify(stale));

    const resumed = resumeRun(paused.runId, { storeDir: h.store, agent });
    await agent.whenCalls(2);
    // The driver has read the file (and removed it) while the call is still in flight: it chose not to cancel.
    await waitFor(() => !existsSync(controlJson), { what: 'the driver to pick up control.json' });
    agent.releaseOne();
    const result = await resumed;
    expect(result.status).toBe('done');
    expect(agent.aborted).toBe(0);
  });

  it('holding a queued run re-checks its status under the lock: a run that moved on meanwhile is left as it is', async () => {
    const h = harness([done]);
    // Seen `queued` by `obra pause`, then taken and finished by a worker before the pause got the lock.
    const finished = await runTask({ ...h.options(), task: 'Add a greet function' });
    expect(finished.status).toBe('done');
    const runJson = join(h.store, 'runs', finished.runId, 'run.json');
    const before = readFileSync(runJson, 'utf8');
    expect(holdQueued(finished.runId, { storeDir: h.store, reason: 'not yet' })).toBe(false);
    expect(readFileSync(runJson, 'utf8')).toBe(before);
    expect(h.runFile(finished.runId).status).toBe('done');
  });
});
