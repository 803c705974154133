import { describe, expect, it } from 'vitest';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import { configSchema } from '../../src/config/schema.js';
import { TaskDrive } from '../../src/engine/drive.js';
import { MemoryRun, memoryHost } from '../../src/hosts/memory/memory-host.js';
import { taskInputOf } from '../../src/hosts/files/local.js';
import { runTask } from '../../src/index.js';
import { RunStore } from '../../src/store/run-store.js';
import { BUSY, deterministicAgent, outcomeOf, tempDir } from '../durability/helpers.js';

/**
 * The engine core knows nothing of files: the same run driven on the in-memory host and on the files host
 * makes the same transitions, keeps the same records and ends the same — and a "crash" on the memory host
 * (only committed entries survive) resumes from what it kept, like a killed process resumes from its journal.
 */

const config = configSchema.parse({ agent: { local: { retry_initial_delay: 0.02 } } });
const TASK = 'Build the parser';

function memoryRun(workdir: string) {
  const runId = 'memory-run-1';
  const task = { text: TASK, workdir, checks: [], requiredMarkers: [] };
  const input = { ...taskInputOf(runId, task, config), sessionId: '11111111-2222-4333-8444-555555555555' };
  return new MemoryRun(runId, input, task);
}

/** What a transition is, host aside: which actor moved, on which event, to which states. */
const steps = (entries: { actor: string; event: { type: string }; task: unknown; iteration: unknown }[]) =>
  entries.filter((e) => e.actor !== 'obra').map((e) => `${e.actor} ${e.event.type.replace(/\.\d+\./, '.N.')} ${JSON.stringify(e.task)} ${JSON.stringify(e.iteration)}`);

describe('the engine core on two hosts', () => {
  it('the memory host and the files host make the same transitions and records for the same run', async () => {
    const workdir = tempDir();
    const onFiles = await runTask({ task: TASK, workdir, storeDir: tempDir(), agent: deterministicAgent(), config });
    const run = memoryRun(workdir);
    const onMemory = await new TaskDrive(memoryHost(run, { agent: deterministicAgent() }), { input: run.input }, { config }).run();

    expect(onMemory.status).toBe('done');
    expect(outcomeOf(onMemory)).toEqual(outcomeOf(onFiles));
    const handle = RunStore.open(onFiles.store, { create: false }).openRun(onFiles.runId);
    expect(steps(run.journal.entries)).toEqual(steps(handle.readJournal()));
    handle.close();
    // Write-ahead holds whatever the host: durable commits were made (one per agent call, the rests, the end).
    expect(run.journal.syncs).toBeGreaterThanOrEqual(4);
  });

  it('a crash on the memory host (entries not committed are lost) resumes from what was kept, and ends as the uninterrupted run', async () => {
    const workdir = tempDir();
    const reference = await runTask({ task: TASK, workdir, storeDir: tempDir(), agent: deterministicAgent(), config });
    const run = memoryRun(workdir);
    const controller = new AbortController();
    // The third agent call never returns: the process "dies" while it is in flight.
    const calls: number[] = [];
    const dying = new ScriptedAgent((request) => {
      calls.push(request.index);
      if (request.index === 2 && request.attempt === 1) return BUSY;
      if (request.index === 3) controller.abort();
      return request.index >= 3 ? 'Iteration 3: reviewed everything, all tests pass.\nSTATUS: DONE' : `Iteration ${request.index}: implemented part ${request.index} and its tests.\nSTATUS: CONTINUE`;
    });
    const interrupted = await new TaskDrive(memoryHost(run, { agent: dying }), { input: run.input }, { config, signal: controller.signal }).run();
    expect(interrupted.status).toBe('interrupted');
    expect(run.records.map((r) => r.index)).toEqual([1, 2]);

    const resumed = await new TaskDrive(memoryHost(run, { agent: deterministicAgent() }), run.restorePoint(), { config }).run();
    expect(outcomeOf(resumed)).toEqual(outcomeOf(reference));
    const markers = run.journal.entries.filter((e) => e.actor === 'obra').map((e) => e.event.type);
    expect(markers).toEqual(['obra.interrupted', 'obra.resume']);
  });
});

describe('drives that share their statecharts', () => {
  it('each acts with its own effects, though twenty of them run at once on one set of machines', async () => {
    const store = tempDir();
    const config = configSchema.parse({ task: { max_iterations: 4 } });
    // Each task's agent says which task it is; a drive that used another's effects would record another's words.
    const runs = await Promise.all(
      Array.from({ length: 20 }, (_, n) => {
        const agent = new ScriptedAgent((request) => `Task ${n}, step ${request.index}: done its part; tests pass.\nSTATUS: ${request.index < 1 + (n % 3) ? 'CONTINUE' : 'DONE'}`);
        return runTask({ task: `Task ${n}`, workdir: store, storeDir: store, config, agent });
      }),
    );
    for (const [n, result] of runs.entries()) {
      expect(result.status).toBe('done');
      expect(result.iterations).toHaveLength(1 + (n % 3));
      const records = RunStore.open(store).openRun(result.runId).readIterations();
      expect(records.map((r) => r.agent?.outcome.kind === 'answer' && r.agent.outcome.result.result.split(',')[0])).toEqual(records.map(() => `Task ${n}`));
    }
  });
});
