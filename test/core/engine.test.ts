import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import { configSchema } from '../../src/config/schema.js';
import type { EngineEvent } from '../../src/index.js';
import { runTask } from '../../src/index.js';
import { RunStore } from '../../src/store/run-store.js';

const tempDir = (prefix: string) => mkdtempSync(join(tmpdir(), prefix));
const readJsonLines = (path: string) => readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const busy = { outcome: { kind: 'sessionBusy' as const, message: 'Error: Session ID x is already in use.' } };

/** Drives a run on a SimulatedClock: every time the engine starts a backoff wait, the clock jumps to its end. */
function simulated(events: EngineEvent[] = []) {
  const clock = new SimulatedClock();
  clock.set(1_700_000_000_000);
  const onEvent = (event: EngineEvent) => {
    events.push(event);
    if (event.type === 'retry') setImmediate(() => clock.set(event.dueAt));
  };
  return { clock, onEvent, events };
}

describe('runTask (engine + store)', () => {
  it('runs iterations until the agent is done and persists every record and snapshot as JSON on disk', async () => {
    const store = tempDir('obra-store-');
    const agent = new ScriptedAgent([
      'Wrote the parser and its tests.\nSTATUS: CONTINUE',
      busy,
      'Wired the parser into the CLI.\nSTATUS: CONTINUE',
      'Reviewed everything; the tests pass.\nSTATUS: DONE',
    ]);
    const sim = simulated();
    const result = await runTask({ task: 'Build a parser', workdir: store, storeDir: store, agent, config: configSchema.parse({}), clock: sim.clock, onEvent: sim.onEvent });

    expect(result.status).toBe('done');
    expect(result.iterations.map((i) => i.decision)).toEqual(['proceed', 'proceed', 'done']);
    const pipeline = ['building', 'prompting', 'awaitingAgent', 'validating', 'scoring', 'deciding', 'persisting'];
    expect(result.iterations[0]!.states).toEqual(pipeline);
    expect(result.iterations[1]!.states).toEqual(['building', 'prompting', 'awaitingAgent', 'retryingSessionLock', 'awaitingAgent', 'validating', 'scoring', 'deciding', 'persisting']);
    expect(result.iterations[1]!.retryDelaysMs).toEqual([2000]);
    expect(result.iterations[1]!.attempts).toBe(2);
    expect(result.iterations[2]!.states).toEqual(pipeline);

    // One session for the whole task: created on the first call, resumed after.
    expect(new Set(result.iterations.map((i) => i.sessionId)).size).toBe(1);
    expect(agent.requests.map((r) => r.mode)).toEqual(['create', 'resume', 'resume', 'resume']);
    // The second iteration's prompt carries the first one's summary.
    expect(agent.requests[1]!.prompt).toContain('Iteration 1: proceed');

    // What is on disk, read back.
    const runDir = join(store, 'runs', result.runId);
    expect(readdirSync(runDir).sort()).toEqual(['events.jsonl', 'iterations.jsonl', 'journal.jsonl', 'run.json']);
    const runFile = JSON.parse(readFileSync(join(runDir, 'run.json'), 'utf8'));
    expect(runFile).toMatchObject({ version: 3, runId: result.runId, status: 'done', iterations: 3, task: { text: 'Build a parser' } });
    expect(runFile.totalCostUsd).toBeCloseTo(0.0003, 6);
    const records = readJsonLines(join(runDir, 'iterations.jsonl'));
    expect(records.map((r) => r.index)).toEqual([1, 2, 3]);
    expect(records[1].agent.outcome.kind).toBe('answer');
    expect(records[1].prompt).toContain('Build a parser');
    const journal = readJsonLines(join(runDir, 'journal.jsonl'));
    expect(journal.map((e) => e.seq)).toEqual(journal.map((_, i) => i + 1));
    // Every iteration state shows up in the journal with the task's persisted snapshot.
    const iterationStates = journal.filter((e) => e.iteration?.index === 2).map((e) => e.iteration.state);
    expect(iterationStates).toEqual(expect.arrayContaining(['retryingSessionLock', 'awaitingAgent', 'persisting']));
    // Lines hold what changed since the line before (see src/store/journal.ts): read them back decoded.
    const last = RunStore.open(store).openRun(result.runId).readJournal().at(-1)!;
    expect(last.task).toBe('done');
    const snapshot = last.snapshot as { status: string; context: { iterations: number } };
    expect(snapshot.status).toBe('done');
    expect(snapshot.context.iterations).toBe(3);
    // The lock is released at the end.
    expect(readdirSync(runDir)).not.toContain('lock');
  });

  it('stops at max_iterations with that status and reason', async () => {
    const store = tempDir('obra-store-');
    // Different answers each time (the same answer three times would be "stuck" and escalate).
    const agent = new ScriptedAgent((_request, call) => `Finished step ${call + 1} of many.\nSTATUS: CONTINUE`);
    const result = await runTask({ task: 'Endless', workdir: store, storeDir: store, agent, config: configSchema.parse({ task: { max_iterations: 3 } }) });
    expect(result.status).toBe('max_iterations');
    expect(result.reason).toMatch(/max_iterations \(3\)/);
    expect(result.iterations).toHaveLength(3);
    expect(agent.requests).toHaveLength(3);
  });

  it('fails the run with the reason when the session stays busy after max_retries', async () => {
    const store = tempDir('obra-store-');
    const sim = simulated();
    const agent = new ScriptedAgent([busy]);
    const config = configSchema.parse({ agent: { local: { max_retries: 3 } } });
    const result = await runTask({ task: 'Busy', workdir: store, storeDir: store, agent, config, clock: sim.clock, onEvent: sim.onEvent });
    expect(result.status).toBe('failed');
    expect(result.iterations[0]!.retryDelaysMs).toEqual([2000, 3000, 4500]);
    expect(result.iterations[0]!.failure).toMatch(/still busy after 3 retries \(waited 9\.500s\)/);
    expect(sim.events.filter((e) => e.type === 'retry').map((e) => (e as { attempt: number }).attempt)).toEqual([1, 2, 3]);
  });
});
