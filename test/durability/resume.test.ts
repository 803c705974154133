import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import type { Agent, AgentCallRequest } from '../../src/agents/agent.js';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import { listRuns } from '../../src/cli/runs.js';
import { configSchema } from '../../src/config/schema.js';
import type { AgentCallRecord } from '../../src/core/types.js';
import { answerRun, resumeRun, runTask, type EngineEvent } from '../../src/index.js';
import { RunStore } from '../../src/store/run-store.js';
import { BUSY_HELD, crashedCopy, deterministicAgent, outcomeOf, tempDir } from './helpers.js';

const fastRetries = configSchema.parse({ agent: { local: { retry_initial_delay: 0.02 } }, task: { max_iterations: 6 } });

/** An agent whose call never returns by itself (a long agent call); it records what it was asked. */
class HangingAgent implements Agent {
  readonly name = 'scripted';
  readonly requests: AgentCallRequest[] = [];
  call(request: AgentCallRequest): Promise<AgentCallRecord> {
    this.requests.push(request);
    return new Promise((_resolve, reject) => request.signal?.addEventListener('abort', () => reject(new Error('stopped')), { once: true }));
  }
}

/** Aborts the run the moment the engine reports `state` (optionally of iteration `index`). */
function interruptOn(state: string, index?: number) {
  const controller = new AbortController();
  const events: EngineEvent[] = [];
  const onEvent = (event: EngineEvent) => {
    events.push(event);
    if (event.type === 'state' && event.actor === 'iteration' && event.state === state && (index === undefined || event.index === index)) {
      queueMicrotask(() => controller.abort());
    }
  };
  return { signal: controller.signal, onEvent, events };
}

function lockProcess(pid: number) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return { pid, start: stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19], host: hostname(), since: new Date().toISOString() };
}

describe('resume after a crash, in every state', () => {
  it('ends exactly like an uninterrupted run wherever it was killed: no iteration lost, none recorded twice', async () => {
    const store = tempDir();
    const reference = await runTask({ task: 'Build the parser', workdir: store, storeDir: store, agent: deterministicAgent(), config: fastRetries });
    expect(reference.status).toBe('done');
    expect(reference.iterations.map((i) => i.states.includes('retryingSessionLock'))).toEqual([false, true, false]);
    const lines = RunStore.open(store).openRun(reference.runId).readJournal().length;
    expect(lines).toBeGreaterThan(20);

    const statesSeen = new Set<string>();
    // k = 0: killed before the first line was on disk (the run starts over from its input).
    for (let k = 0; k < lines; k++) {
      const entry = RunStore.open(store).openRun(reference.runId).readJournal()[k - 1];
      if (entry?.iteration) statesSeen.add(String(entry.iteration.state));
      for (const withRecord of entry?.iteration?.state === 'persisting' ? [false, true] : [false]) {
        const copy = crashedCopy(store, reference.runId, k, { withRecord });
        expect(listRuns(copy)[0]!.status).toBe('interrupted');
        const resumed = await resumeRun(reference.runId, { storeDir: copy, agent: deterministicAgent(), config: fastRetries });
        expect({ k, withRecord, ...outcomeOf(resumed) }).toEqual({ k, withRecord, ...outcomeOf(reference) });
        const records = readFileSync(join(copy, 'runs', reference.runId, 'iterations.jsonl'), 'utf8').trim().split('\n');
        expect(records.map((l) => JSON.parse(l).index)).toEqual([1, 2, 3]);
        expect(listRuns(copy)[0]!.status).toBe('done');
      }
    }
    expect([...statesSeen].sort()).toEqual(['awaitingAgent', 'building', 'deciding', 'persisting', 'prompting', 'retryingSessionLock', 'scoring', 'validating']);
  });

  it('a power cut that took the tail of iterations.jsonl: the records come back from the journal', async () => {
    const store = tempDir();
    const reference = await runTask({ task: 'Build the parser', workdir: store, storeDir: store, agent: deterministicAgent(), config: fastRetries });
    const journal = RunStore.open(store).openRun(reference.runId).readJournal();
    // Killed while iteration 3 was being built, with iteration 2's record (written, not yet synced) lost.
    const k = journal.findIndex((e) => e.iteration?.index === 3 && e.iteration.state === 'prompting');
    const copy = crashedCopy(store, reference.runId, k, { withRecord: false });
    const records = join(copy, 'runs', reference.runId, 'iterations.jsonl');
    writeFileSync(records, readFileSync(records, 'utf8').split('\n').slice(0, 1).join('\n') + '\n');
    expect(readFileSync(records, 'utf8').trim().split('\n')).toHaveLength(1);
    const resumed = await resumeRun(reference.runId, { storeDir: copy, agent: deterministicAgent(), config: fastRetries });
    expect(outcomeOf(resumed)).toEqual(outcomeOf(reference));
    expect(readFileSync(records, 'utf8').trim().split('\n').map((l) => JSON.parse(l).index)).toEqual([1, 2, 3]);
  });

  it('a record the journal does not back (its lines were lost) is dropped and the iteration done again', async () => {
    const store = tempDir();
    const reference = await runTask({ task: 'Build the parser', workdir: store, storeDir: store, agent: deterministicAgent(), config: fastRetries });
    const journal = RunStore.open(store).openRun(reference.runId).readJournal();
    // The journal's synced part ends in iteration 3's `validating`, but the copy of record 3 reached the disk.
    const k = journal.findIndex((e) => e.iteration?.index === 3 && e.iteration.state === 'validating') + 1;
    const copy = crashedCopy(store, reference.runId, k, { withRecord: false });
    const records = join(copy, 'runs', reference.runId, 'iterations.jsonl');
    const stale = JSON.parse(readFileSync(join(store, 'runs', reference.runId, 'iterations.jsonl'), 'utf8').trim().split('\n')[2]!);
    writeFileSync(records, `${readFileSync(records, 'utf8')}${JSON.stringify({ ...stale, decisionRule: 'stale' })}\n`);
    const resumed = await resumeRun(reference.runId, { storeDir: copy, agent: deterministicAgent(), config: fastRetries });
    expect(outcomeOf(resumed)).toEqual(outcomeOf(reference));
    const lines = readFileSync(records, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((r) => [r.index, r.decisionRule])).toEqual([[1, 'progressing'], [2, 'progressing'], [3, 'acceptedAsDone']]);
  });

  it('killed in awaitingAgent: the call is issued again, on the same session with the same prompt, and recorded', async () => {
    const store = tempDir();
    const hanging = new HangingAgent();
    const interrupt = interruptOn('awaitingAgent', 2);
    const first = await runTask({ task: 'Build the parser', workdir: store, storeDir: store, agent: hangingAfterFirst(hanging), config: fastRetries, ...interrupt });
    expect(first.status).toBe('interrupted');
    expect(listRuns(store)[0]!.status).toBe('interrupted');

    const again = new ScriptedAgent(() => 'Iteration 2: implemented part 2.\nSTATUS: DONE');
    const resumed = await resumeRun(first.runId, { storeDir: store, agent: again });
    expect(resumed.status).toBe('done');
    const lost = hanging.requests.at(-1)!;
    expect(again.requests).toHaveLength(1);
    expect(again.requests[0]).toMatchObject({ index: 2, attempt: lost.attempt, sessionId: lost.sessionId, prompt: lost.prompt });
    // The attempt was not counted twice; the re-issue is on record.
    expect(resumed.iterations[1]!.attempts).toBe(1);
    const markers = RunStore.open(store).openRun(first.runId).readJournal({ markers: true }).filter((e) => e.actor === 'obra');
    expect(markers.map((m) => m.event.type)).toEqual(['obra.interrupted', 'obra.resume']);
    expect(markers[1]!.event.restarted).toEqual(['callAgent']);
  });

  it('killed in retryingSessionLock: waits only what was left of the backoff, with the attempt count kept', async () => {
    const store = tempDir();
    const clock = new SimulatedClock();
    clock.set(1_800_000_000_000);
    const interrupt = interruptOn('retryingSessionLock');
    const config = configSchema.parse({ agent: { local: { retry_initial_delay: 2 } } });
    const first = await runTask({ task: 'Build', workdir: store, storeDir: store, agent: new ScriptedAgent([BUSY_HELD]), config, clock, ...interrupt });
    expect(first.status).toBe('interrupted');
    const retry = interrupt.events.find((e) => e.type === 'retry') as Extract<EngineEvent, { type: 'retry' }>;
    expect(retry).toMatchObject({ delayMs: 2000, attempt: 1, dueAt: 1_800_000_002_000 });

    // 1.5 s pass while the run is down; on resume only 0.5 s of the 2 s wait is left.
    clock.set(1_800_000_001_500);
    const events: EngineEvent[] = [];
    const agent = new ScriptedAgent(['Done with it.\nSTATUS: DONE']);
    const resumed = resumeRun(first.runId, { storeDir: store, agent, config, clock, onEvent: (e) => events.push(e) });
    await waitFor(() => events.some((e) => e.type === 'state' && e.state === 'retryingSessionLock'));
    await new Promise((r) => setImmediate(r));
    clock.increment(499);
    await new Promise((r) => setImmediate(r));
    expect(agent.requests).toHaveLength(0);
    clock.increment(1);
    const result = await resumed;
    expect(agent.requests).toHaveLength(1);
    expect(result.status).toBe('done');
    expect(result.iterations[0]).toMatchObject({ attempts: 2, retryDelaysMs: [2000] });
    expect(result.iterations[0]!.states).toEqual(['building', 'prompting', 'awaitingAgent', 'retryingSessionLock', 'awaitingAgent', 'validating', 'scoring', 'deciding', 'persisting']);
    // The call went out at the original due time, not 2 s after the resume.
    const journal = RunStore.open(store).openRun(first.runId).readJournal();
    const retried = journal.find((e) => e.event.type.startsWith('xstate.after.'))!;
    expect(retried.at).toBe(1_800_000_002_000);
  });

  it('a run waiting for a human was killed before it said so: `answer` still takes it on', async () => {
    const store = tempDir();
    const asking = new ScriptedAgent(() => 'Which database should I migrate?');
    const first = await runTask({ task: 'Migrate the database', workdir: store, storeDir: store, agent: asking, config: fastRetries });
    expect(first.status).toBe('escalated');
    expect(first.question).toBeTruthy();
    // What a kill right after the transition leaves: run.json not yet updated.
    const runJson = join(store, 'runs', first.runId, 'run.json');
    writeFileSync(runJson, JSON.stringify({ ...JSON.parse(readFileSync(runJson, 'utf8')), status: 'running' }));
    expect(listRuns(store)[0]!.status).toBe('interrupted');
    const answered = await answerRun(first.runId, 'Use the users table', { storeDir: store, agent: new ScriptedAgent(['Migrated the users table and ran the migration tests.\nSTATUS: DONE']) });
    expect(answered.status).toBe('done');
    expect(answered.iterations).toHaveLength(first.iterations.length + 1);
  });

  it('refuses a run another live process drives, and takes over the lock of a dead one', async () => {
    const store = tempDir();
    const first = await runTask({ task: 'Build', workdir: store, storeDir: store, agent: new HangingAgent(), config: fastRetries, ...interruptOn('awaitingAgent') });
    const lockPath = join(store, 'runs', first.runId, 'lock');
    // As a killed driver leaves it: run.json still says running.
    const runJson = join(store, 'runs', first.runId, 'run.json');
    writeFileSync(runJson, JSON.stringify({ ...JSON.parse(readFileSync(runJson, 'utf8')), status: 'running' }));
    const sleeper = spawn('sleep', ['30']);
    try {
      writeFileSync(lockPath, JSON.stringify(lockProcess(sleeper.pid!)));
      expect(listRuns(store)[0]!.status).toBe('running');
      const refused = resumeRun(first.runId, { storeDir: store, agent: deterministicAgent({ iterations: 1 }) });
      await expect(refused).rejects.toMatchObject({ exitCode: 3, message: expect.stringContaining(`process ${sleeper.pid}`) });
      // The same pid with another start time is a different process (a pid reused after a reboot): stale.
      writeFileSync(lockPath, JSON.stringify({ ...lockProcess(sleeper.pid!), start: '1' }));
      expect(listRuns(store)[0]!.status).toBe('interrupted');
    } finally {
      sleeper.kill();
    }
    const dead = spawn('true');
    await new Promise((r) => dead.on('exit', r));
    writeFileSync(lockPath, JSON.stringify({ pid: dead.pid, start: null, host: hostname(), since: 'then' }));
    expect(listRuns(store)[0]!.status).toBe('interrupted');
    const resumed = await resumeRun(first.runId, { storeDir: store, agent: deterministicAgent({ iterations: 1 }) });
    expect(resumed.status).toBe('done');
  });

  it('show and resume of a finished run give the same result object as the run itself', async () => {
    const store = tempDir();
    const result = await runTask({ task: 'Build', workdir: store, storeDir: store, agent: deterministicAgent(), config: fastRetries });
    const { printRunDetails } = await import('../../src/cli/show.js');
    expect(printRunDetails(store, result.runId, true)).toEqual(result);
    const before = readFileSync(join(store, 'runs', result.runId, 'journal.jsonl'), 'utf8');
    expect(await resumeRun(result.runId, { storeDir: store })).toEqual(result);
    // Nothing was driven again.
    expect(readFileSync(join(store, 'runs', result.runId, 'journal.jsonl'), 'utf8')).toBe(before);
  });
});

/** First call answers (iteration 1), every later call hangs. */
function hangingAfterFirst(hanging: HangingAgent): Agent {
  const first = new ScriptedAgent(['Iteration 1: implemented part 1.\nSTATUS: CONTINUE']);
  let calls = 0;
  return { name: 'scripted', call: (request) => (calls++ === 0 ? first.call(request) : hanging.call(request)) };
}

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}
