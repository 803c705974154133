import { readdirSync, readFileSync } from 'node:fs';
import { execa } from 'execa';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { AccountLimits } from '../../src/agents/account-limits.js';
import type { Agent } from '../../src/agents/agent.js';
import { ScriptedAgent, type ScriptedReply } from '../../src/agents/scripted-agent.js';
import type { ConfigInput } from '../../src/config/schema.js';
import type { RunResult } from '../../src/engine/run-result.js';
import { answerRun, resumeRun, runTask, type EngineEvent } from '../../src/index.js';
import { replayRun } from '../../src/replay/replay.js';
import { RunControl } from '../../src/index.js';
import { RunStore } from '../../src/store/run-store.js';
import { config, fakeWorld } from '../agents/fake-env.js';
import { CLI, FAKE_CLAUDE, obra, sandbox } from '../helpers/cli.js';
import { harness, tempDir } from '../judging/helpers.js';

/**
 * The account's usage limit as a resting state of the task machine (`waitingForUsageLimit`), on XState's
 * SimulatedClock: the task waits for the reset plus the margin, then runs the suspended iteration again on the
 * same session; the wait is durable, shared by every task of the store, and not counted as an iteration or as
 * working time. A limit with nothing to wait for asks a human.
 */

const HOUR = 3_600_000;
const SUBSCRIBER = { CLAUDE_CODE_OAUTH_TOKEN: 'dummy-oauth-token' };

type UsageLimitEvent = Extract<EngineEvent, { type: 'usage-limit' }>;

/** Drives a run on a simulated clock that starts at the real time (the fake CLI words its resets in real time). */
function limitedRun(replies: unknown[], configInput: ConfigInput = {}) {
  const world = fakeWorld('usage-limit');
  const clock = new SimulatedClock();
  clock.set(Date.now());
  const store = join(world.root, 'store');
  const events: EngineEvent[] = [];
  const waiting: ((e: UsageLimitEvent) => void)[] = [];
  /** Every call the agent made, with the simulated time it was made at. */
  const callsAt: number[] = [];
  const inner = world.agent({ ...SUBSCRIBER, FAKE_CLAUDE_REPLIES: JSON.stringify(replies) });
  const agent: Agent = {
    name: 'claude-code',
    call: (request) => {
      callsAt.push(clock.now());
      return inner.call(request);
    },
  };
  const options = {
    storeDir: store,
    workdir: world.workdir,
    agent,
    clock,
    config: config(configInput),
    onEvent: (event: EngineEvent) => {
      events.push(event);
      if (event.type === 'usage-limit') for (const resolve of waiting.splice(0)) resolve(event);
    },
  };
  const nextLimit = () => new Promise<UsageLimitEvent>((resolve) => waiting.push(resolve));
  /** One millisecond before `dueAt` no new call is made; at `dueAt` the run goes on. Resolves with its result. */
  const releaseAt = async (dueAt: number, run: Promise<RunResult>) => {
    const calls = callsAt.length;
    clock.set(dueAt - 1);
    await settle();
    expect(callsAt).toHaveLength(calls);
    clock.set(dueAt);
    return run;
  };
  return { world, clock, store, events, callsAt, agent, options, nextLimit, releaseAt };
}

const taskStates = (events: EngineEvent[]) => events.filter((e): e is Extract<EngineEvent, { type: 'state' }> => e.type === 'state' && e.actor === 'task').map((e) => e.state);
const settle = () => new Promise((resolve) => setTimeout(resolve, 150));
const dedupe = (list: string[]) => list.filter((x, i) => x !== list[i - 1]);

describe('a usage limit parks the task until its reset (SimulatedClock)', () => {
  it('a five-hour limit: waits for the reset + margin, then the same session goes on; not an iteration, not working time', async () => {
    const r = limitedRun([{ usage_limit: { type: 'five_hour', resets_in_s: 5 * 3600 } }, 'Added greet(name) and checked it.\nSTATUS: DONE'], {
      budget: { max_wall_seconds: 3600 },
    });
    const startedAt = r.clock.now();
    const running = runTask({ ...r.options, task: 'Add a greet(name) function' });
    const limit = await r.nextLimit();

    // The reset is the CLI's resetsAt (epoch seconds, ~5 h ahead); the task goes on 30 s (the default margin) later.
    expect(limit.limitType).toBe('five_hour');
    expect(Math.abs(limit.resetsAt - (startedAt + 5 * HOUR))).toBeLessThan(5_000);
    expect(limit.dueAt).toBe(limit.resetsAt + 30_000);
    expect(limit.message).toMatch(/^You've hit your session limit · resets/);
    expect(r.callsAt).toHaveLength(1);

    // One millisecond before the due time: nothing. At it: the suspended iteration runs again.
    const result = await r.releaseAt(limit.dueAt, running);

    expect(result.status).toBe('done');
    expect(r.callsAt).toEqual([startedAt, limit.dueAt]);
    expect(taskStates(r.events)).toEqual(['running', 'waitingForUsageLimit', 'running', 'done']);
    // Iteration 1 is the one that finished; the suspended attempt was not counted.
    expect(result.iterations.map((i) => [i.index, i.decision])).toEqual([[1, 'done']]);
    // The same session: created by the refused call (the CLI writes the transcript first), resumed after the wait.
    const flags = r.world.sessionFlags();
    expect(flags).toHaveLength(2);
    expect(flags[0]).toMatch(/^create /);
    expect(flags[1]).toBe(flags[0]!.replace('create', 'resume'));
    // Five hours of waiting are not working time: the one-hour budget was not touched.
    const handle = RunStore.open(r.store).openRun(result.runId);
    const last = handle.readJournal().at(-1)!;
    handle.close();
    expect((last.snapshot as { context: { activeMs: number } }).context.activeMs).toBeLessThan(60_000);
    // The wait replays like any other step: the machines, fed the record, wait and go on exactly so.
    const replay = await replayRun(result.runId, { storeDir: r.store });
    expect(replay).toMatchObject({ verified: true, divergence: null, iterations: 1 });
  });

  it('killed while waiting, then resumed: only what is left of the wait is waited (the restored timer)', async () => {
    const r = limitedRun([{ usage_limit: { type: 'five_hour', resets_in_s: 3 * 3600 } }, 'Done after the limit.\nSTATUS: DONE'], { agent: { local: { usage_limit_margin: '1m' } } });
    const controller = new AbortController();
    const running = runTask({ ...r.options, task: 'Add a greet(name) function', signal: controller.signal });
    const limit = await r.nextLimit();
    expect(limit.dueAt).toBe(limit.resetsAt + 60_000);
    // Two hours later the process dies.
    r.clock.increment(2 * HOUR);
    controller.abort();
    const interrupted = await running;
    expect(interrupted.status).toBe('interrupted');

    const resumed = resumeRun(interrupted.runId, { ...r.options });
    await settle();
    expect(r.callsAt).toHaveLength(1);
    const result = await r.releaseAt(limit.dueAt, resumed);
    expect(result.status).toBe('done');
    expect(r.callsAt[1]).toBe(limit.dueAt);
    expect(dedupe(taskStates(r.events))).toEqual(['running', 'waitingForUsageLimit', 'running', 'done']);
    // The journal says how: the resume restored the wait and re-entered it (RESUMED), whose timer then fired.
    const handle = RunStore.open(r.store).openRun(result.runId);
    const lines = handle.readJournal({ markers: true });
    handle.close();
    const resume = lines.findIndex((l) => l.event.type === 'obra.resume');
    // (XState reports a new iteration's first snapshot before the task transition that started it.)
    expect(lines.slice(resume).map((l) => `${l.actor} ${l.event.type} ${String(l.task)}`).slice(0, 5)).toEqual([
      'obra obra.resume null',
      'task xstate.init waitingForUsageLimit',
      'task RESUMED waitingForUsageLimit',
      'iteration xstate.init running',
      'task xstate.after.usageLimitLeft.task.waitingForUsageLimit running',
    ]);
    expect(await replayRun(result.runId, { storeDir: r.store })).toMatchObject({ verified: true, segments: 2 });
  });

  it('obra pause during the wait pauses the run; resume goes back to waiting for the same reset', async () => {
    const r = limitedRun([{ usage_limit: { type: 'five_hour', resets_in_s: 3600 } }, 'Finished after the pause.\nSTATUS: DONE']);
    const control = new RunControl();
    const running = runTask({ ...r.options, task: 'Task', control });
    const limit = await r.nextLimit();
    control.pause('a break');
    const paused = await running;
    expect(paused.status).toBe('paused');
    expect(paused.reason).toMatch(/^paused by request after iteration 0/);

    const resumed = resumeRun(paused.runId, { ...r.options });
    const again = await r.nextLimit();
    // The limit is still known (limits.json): no call is made before it resets.
    expect(again).toMatchObject({ resetsAt: limit.resetsAt, dueAt: limit.dueAt });
    expect(r.callsAt).toHaveLength(1);
    r.clock.set(limit.dueAt);
    expect((await resumed).status).toBe('done');
    expect(r.callsAt).toHaveLength(2);
  });

  it('two tasks on one store: once one sees the limit, the other makes no call until the reset', async () => {
    const clock = new SimulatedClock();
    clock.set(10 * HOUR);
    const store = tempDir('obra-limits-');
    const resetsAt = clock.now() + HOUR;
    const limited: ScriptedReply = { outcome: { kind: 'usageLimit', limitType: 'five_hour', resetsAt, blockedBy: null, message: "You've hit your session limit · resets 11:00am (UTC)" } };
    const callsA: number[] = [];
    const callsB: number[] = [];
    const scripted = (calls: number[], first: ScriptedReply) =>
      new ScriptedAgent((_request, n) => {
        calls.push(clock.now());
        return n === 0 ? first : 'Finished the work and checked it.\nSTATUS: DONE';
      });
    const limits: UsageLimitEvent[] = [];
    const onEvent = (event: EngineEvent) => {
      if (event.type === 'usage-limit') limits.push(event);
    };
    const a = harness(scripted(callsA, limited));
    const b = harness(scripted(callsB, 'Finished the work and checked it.\nSTATUS: DONE'));
    const runA = runTask({ ...a.options({ storeDir: store, clock, onEvent }), task: 'Task A' });
    await until(() => limits.length === 1);
    // The limit is the account's: written where every task of the store sees it.
    expect(JSON.parse(readFileSync(join(store, 'limits.json'), 'utf8')).usageLimit).toMatchObject({ resetsAt, limitType: 'five_hour' });

    const runB = runTask({ ...b.options({ storeDir: store, clock, onEvent }), task: 'Task B' });
    await until(() => limits.length === 2);
    expect(callsB).toEqual([]);
    expect(limits[1]!.message).toMatch(/^no call made: this account's usage limit \(five_hour\) is in force until/);
    expect(limits.map((l) => l.dueAt)).toEqual([resetsAt + 30_000, resetsAt + 30_000]);

    clock.set(resetsAt + 30_000);
    const [doneA, doneB] = await Promise.all([runA, runB]);
    expect([doneA.status, doneB.status]).toEqual(['done', 'done']);
    expect(callsA).toEqual([10 * HOUR, resetsAt + 30_000]);
    expect(callsB).toEqual([resetsAt + 30_000]);
    // B's suspended attempt was not counted: its one iteration is the call after the wait.
    expect(doneB.iterations.map((i) => [i.index, i.decision])).toEqual([[1, 'done']]);
  });

  it('a limit already known at start: the first call is not made; the task waits, then works', async () => {
    const clock = new SimulatedClock();
    clock.set(20 * HOUR);
    const store = tempDir('obra-limits-');
    const h = harness(['Finished the work and checked it.\nSTATUS: DONE']);
    // A run before this one hit the limit (the store keeps it in limits.json).
    RunStore.open(store);
    new AccountLimits(join(store, 'limits.json')).note({ limitType: 'seven_day', resetsAt: clock.now() + 2 * HOUR, blockedBy: null, message: "You've hit your weekly limit" }, 'earlier-run', clock.now());
    const limits: UsageLimitEvent[] = [];
    const running = runTask({ ...h.options({ storeDir: store, clock, onEvent: (e) => (e.type === 'usage-limit' ? limits.push(e) : 0) }), task: 'Task' });
    await until(() => limits.length === 1);
    expect(h.agent.requests).toHaveLength(0);
    expect(limits[0]).toMatchObject({ limitType: 'seven_day', dueAt: clock.now() + 2 * HOUR + 30_000 });
    clock.increment(2 * HOUR + 30_000);
    expect((await running).status).toBe('done');
    expect(h.agent.requests).toHaveLength(1);
  });
});

describe('a usage limit with nothing to wait for asks a human', () => {
  it("an org's spend limit: escalated with the CLI's own words, nothing counted; an answer runs the iteration again", async () => {
    const r = limitedRun([{ usage_limit: { org: true } }, 'Finished after the limit was raised.\nSTATUS: DONE']);
    const escalated = await runTask({ ...r.options, task: 'Add a greet(name) function' });
    expect(escalated.status).toBe('escalated');
    expect(escalated.question).toContain("You've hit your org's monthly spend limit · ask your admin to raise it at claude.ai/settings/usage");
    expect(escalated.question).toContain(`obra answer ${escalated.runId} "go on"`);
    expect(escalated.iterations).toEqual([]);
    expect(taskStates(r.events)).toEqual(['running', 'awaitingHuman']);

    const done = await answerRun(escalated.runId, 'The admin raised the limit', { ...r.options });
    expect(done.status).toBe('done');
    expect(done.iterations.map((i) => i.index)).toEqual([1]);
  });

  it('a reset further away than agent.local.max_limit_wait escalates; a longer max_limit_wait waits for it', async () => {
    const weekly = { usage_limit: { type: 'seven_day', resets_in_s: 9 * 86_400 } };
    const strict = limitedRun([weekly, 'ok\nSTATUS: DONE']);
    const escalated = await runTask({ ...strict.options, task: 'Task' });
    expect(escalated.status).toBe('escalated');
    expect(escalated.question).toMatch(/resets at .* UTC, more than agent\.local\.max_limit_wait \(192 h\) away/);

    const patient = limitedRun([weekly, 'ok, finished the task and verified it.\nSTATUS: DONE'], { agent: { local: { max_limit_wait: '10d' } } });
    const running = runTask({ ...patient.options, task: 'Task' });
    const limit = await patient.nextLimit();
    expect(limit.limitType).toBe('seven_day');
    patient.clock.set(limit.dueAt);
    expect((await running).status).toBe('done');
  });
});

async function until(predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('the usage-limit wait from the command line (real processes, real time)', () => {
  it('shows the wait; SIGKILL during it, `obra resume` waits only what is left and finishes on the same session', { timeout: 60_000 }, async () => {
    const box = sandbox();
    const env = {
      ...box.env,
      ...SUBSCRIBER,
      FAKE_CLAUDE_REPLIES: JSON.stringify([{ usage_limit: { type: 'five_hour', resets_in_s: 8 } }, 'Added greet(name) after the limit reset.\nSTATUS: DONE']),
      FAKE_CLAUDE_LOG: join(box.dir, 'fake.log'),
    };
    const flags = ['--agent-bin', FAKE_CLAUDE, '--set', 'agent.local.usage_limit_margin=1'];
    const child = execa('node', [CLI, 'run', '--task', 'Add a greet(name) function', ...flags], { cwd: box.dir, env, reject: false });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await until(() => /usage limit \(five_hour\) — resumes at (\d\d? [A-Z][a-z]{2,3} )?\d\d:\d\d: You've hit your session limit/.test(stderr), 20_000);
    // Killed once the wait is in the journal (what a resume restores).
    const runId = readdirSync(join(box.dir, '.obra', 'runs'))[0]!;
    await until(() => readFileSync(join(box.dir, '.obra', 'runs', runId, 'journal.jsonl'), 'utf8').includes('"task":"waitingForUsageLimit"'));
    child.kill('SIGKILL');
    await child;

    const shown = await obra(['show', runId, '--json'], { cwd: box.dir, env: box.env });
    const waiting = JSON.parse(shown.stdout);
    expect(waiting).toMatchObject({ status: 'interrupted', waiting: { kind: 'usageLimit', limitType: 'five_hour' } });
    const dueAt: number = waiting.waiting.dueAt;
    expect(dueAt - waiting.waiting.resetsAt).toBe(1000);
    expect((await obra(['show', runId], { cwd: box.dir, env: box.env })).stdout).toMatch(/^Waiting: usage limit \(five_hour\) — resumes at (\d\d? [A-Z][a-z]{2,3} )?\d\d:\d\d \(You've hit your session limit/m);

    // Resumed late in the wait, so that "what is left" (under 2 s) and "all of it again" (9 s) cannot be mistaken
    // for each other, even with a slow start of the resumed process.
    const firstCall = JSON.parse(readFileSync(join(box.dir, 'fake.log'), 'utf8').split('\n')[0]!);
    const wholeWait = dueAt - firstCall.startedAt;
    expect(wholeWait).toBeGreaterThan(8_000);
    await until(() => Date.now() >= dueAt - 1_500, 20_000);
    const resumedAt = Date.now();
    const resumed = await obra(['resume', runId, ...flags], { cwd: box.dir, env });
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    const calls = readFileSync(join(box.dir, 'fake.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(calls.map((c) => c.outcome)).toEqual(['usage-limit', 'answer']);
    // Called again at the due time: not earlier, and not after a whole new wait from the resume.
    expect(calls[1].startedAt).toBeGreaterThanOrEqual(dueAt);
    expect(calls[1].startedAt - resumedAt).toBeLessThan(wholeWait / 2);
    const session = calls[0].argv[calls[0].argv.indexOf('--session-id') + 1];
    expect(calls[1].argv).toEqual(expect.arrayContaining(['--resume', session]));
  });

  it('a limit coming near, and the CLI retrying the API by itself, show as warning lines on the terminal and in run.log', async () => {
    const box = sandbox();
    const env = {
      ...box.env,
      ...SUBSCRIBER,
      FAKE_CLAUDE_REPLIES: JSON.stringify([{ result: 'Added greet(name) and checked it.\nSTATUS: DONE', api_retries: { count: 2, status: 529, delay_ms: 50 }, usage_warning: { utilization: 0.93 } }]),
    };
    const run = await obra(['run', '--task', 'Add a greet(name) function', '--agent-bin', FAKE_CLAUDE], { cwd: box.dir, env });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stderr).toContain('WARNING API 529 overloaded, CLI retry 1/10 in 0.1 s');
    expect(run.stderr).toContain('WARNING API 529 overloaded, CLI retry 2/10 in 0.1 s');
    // The reset is a time of day, with its day when that is not today (late in the evening, a reset hours away).
    expect(run.stderr).toMatch(/WARNING usage at 93% of the five_hour limit \(resets (\d\d? [A-Z][a-z]{2,3} )?\d\d:\d\d\)/);
    const runId = readdirSync(join(box.dir, '.obra', 'runs'))[0]!;
    const log = readFileSync(join(box.dir, '.obra', 'runs', runId, 'run.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(log.filter((l) => l.event === 'api-retry').map((l) => l.msg)).toEqual(['API 529 overloaded, CLI retry 1/10 in 0.1 s', 'API 529 overloaded, CLI retry 2/10 in 0.1 s']);
    expect(log.find((l) => l.event === 'usage-warning')).toMatchObject({ level: 40, utilization: 0.93 });
  });
});
