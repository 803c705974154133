import { describe, expect, it } from 'vitest';
import { isAlive, until as waitFor } from '../agents/fake-env.js';
import { agentBin, clusterPerSuite, fakeCalls, restateAvailable, startWorker, submit, until, workerReady } from './helpers.js';

/**
 * An `obra worker` SIGKILLed (as an OOM kill would) in the middle of an agent call: the call and the child it
 * started die with it. Before the reaper nothing ever killed them on Restate (no stale lock is taken over
 * there when the task moves to a worker on another machine).
 */
describe.runIf(restateAvailable('test/restate/orphans.test.ts'))('Restate: a worker SIGKILLed mid-call leaves no agent process behind', () => {
  const suite = clusterPerSuite('obra-restate-orphans-');

  it('the hanging CLI and its child are gone within two seconds of the kill', async () => {
    const { cluster, workers } = suite();
    const bin = agentBin(cluster, 'hanging', { FAKE_CLAUDE_FAIL: 'hang' });
    const worker = startWorker(cluster, 'doomed');
    workers.push(worker);
    await workerReady(worker);
    await submit(cluster, 'Split the parser', bin);

    const call = await until('the agent call to hang with a child', async () => fakeCalls(cluster).find((c) => c.outcome === 'hang-child'), (c) => c !== undefined);
    const { pid: cli, childPid: grandchild } = call!;
    expect(isAlive(cli) && isAlive(grandchild!)).toBe(true);
    worker.kill('SIGKILL');
    expect((await worker).signal).toBe('SIGKILL');
    await waitFor(() => !isAlive(cli) && !isAlive(grandchild!), 2000, `the agent (${cli}) and its child (${grandchild}) to die with the worker`);
  }, 120_000);
});
