import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import { answerRun, replayRun, resumeRun } from '../../src/index.js';
import { RunStore } from '../../src/store/run-store.js';
import { ROOT } from '../agents/fake-env.js';
import { tempDir } from './helpers.js';

/**
 * Runs written by the Obra before the engine-core redesign (commit b1edfe0, store version 2): the three demo
 * scenarios (done; escalated, waiting for a human; paused at a checkpoint) and a run killed by SIGKILL while its
 * iteration waited out a backoff. Today's Obra replays every one of them step for step, and takes each waiting
 * one on: the persisted format did not change, and the context fields the machines gained since are filled in
 * when a snapshot is restored (src/persisted/snapshot.ts, restorableSnapshot).
 */

const FIXTURE = join(ROOT, 'fixtures/runs/store-v2-b1edfe0');
const RUNS = { done: '20261128-145035-a8d2ba', escalated: '20261128-145039-e0f011', paused: '20261128-145040-171070', killedInBackoff: '20261128-145045-85e9ff' };

/** A copy of the old store (the fixture itself is never written to). */
function oldStore(): string {
  const store = join(tempDir('obra-compat-'), '.obra');
  cpSync(FIXTURE, store, { recursive: true });
  return store;
}

const finish = new ScriptedAgent(['Finished the task as asked and checked it; everything passes.\nSTATUS: DONE']);
const passingChecks = async (commands: string[]) => commands.map((command) => ({ command, exitCode: 0, durationMs: 1, timedOut: false, outputTail: '' }));

describe('runs written by the previous Obra (store version 2, before the engine core)', () => {
  it('each replays step for step on today\'s statecharts', async () => {
    const store = oldStore();
    for (const runId of Object.values(RUNS)) {
      const replay = await replayRun(runId, { storeDir: store });
      expect({ runId, verified: replay.verified, divergence: replay.divergence }).toEqual({ runId, verified: true, divergence: null });
      expect(replay.steps).toBeGreaterThan(5);
    }
  });

  it('an escalated run is answered and finishes; its replay still verifies, now in two segments', async () => {
    const store = oldStore();
    const done = await answerRun(RUNS.escalated, 'Use the users table', { storeDir: store, agent: finish });
    expect(done.status).toBe('done');
    expect(done.iterations.map((i) => [i.index, i.decision])).toEqual([[1, 'retry'], [2, 'retry'], [3, 'escalate'], [4, 'done']]);
    expect(await replayRun(RUNS.escalated, { storeDir: store })).toMatchObject({ verified: true, segments: 2 });
  });

  it('a paused run resumes (RESUMED, in `paused`: go on) and finishes', async () => {
    const store = oldStore();
    const done = await resumeRun(RUNS.paused, { storeDir: store, agent: finish, runChecks: passingChecks });
    expect(done.status).toBe('done');
    expect(done.iterations.map((i) => i.index)).toEqual([1, 2]);
  });

  it('a run killed in an old backoff wait resumes: the wait is re-entered, the call made, the run done', async () => {
    const store = oldStore();
    const before = RunStore.open(store, { create: false }).openRun(RUNS.killedInBackoff);
    const last = before.readJournal().at(-1)!;
    before.close();
    expect(last.iteration).toEqual({ index: 2, state: 'retryingSessionLock' });
    // The old snapshot has none of the iteration's newer fields; the restore fills them in.
    expect(Object.keys((last.snapshot as { children: { iteration: { snapshot: { context: object } } } }).children.iteration.snapshot.context)).not.toContain('idleRetries');
    const done = await resumeRun(RUNS.killedInBackoff, { storeDir: store, agent: finish });
    expect(done.status).toBe('done');
    expect(done.iterations.map((i) => [i.index, i.decision])).toEqual([[1, 'proceed'], [2, 'done']]);
    expect(done.iterations[1]!.states).toContain('retryingSessionLock');
    expect(await replayRun(RUNS.killedInBackoff, { storeDir: store })).toMatchObject({ verified: true, segments: 2 });
  });
});
