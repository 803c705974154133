import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import { configSchema } from '../../src/config/schema.js';
import { submitToRestate } from '../../src/hosts/restate/submit.js';
import { startRestateWorker } from '../../src/hosts/restate/worker.js';
import { clusterPerSuite, restateAvailable, runOf, until } from './helpers.js';

/**
 * A worker stopped the moment its last task settles (as `obra worker` on Ctrl-C, or a benchmark's round): the
 * queue calls its settle sent are still running in it. Cut there, Restate would retry them at its endpoint only
 * (gone), and the queue's key — every take after — would wait behind them for good.
 */
const available = restateAvailable('Restate worker stop');
const suite = available ? describe : describe.skip;

suite('Restate: a worker that stops as its task settles', () => {
  const setup = clusterPerSuite('obra-restate-stop-');

  it('leaves the queue free: the next worker takes the next task at once, three times over', async () => {
    const { cluster } = setup();
    const runIds: string[] = [];
    // A handler runs only in a live worker: each round's worker also answers for the rounds before.
    for (let round = 0; round <= 3; round++) {
      const stop = new AbortController();
      let settled = () => {};
      const ended = new Promise<void>((resolve) => (settled = resolve));
      const worker = await startRestateWorker({
        ...cluster.server,
        identityKeys: [cluster.server.identityKey!],
        concurrency: 1,
        signal: stop.signal,
        agent: () => new ScriptedAgent(['Done; tests pass.\nSTATUS: DONE']),
        onEvent: (_runId, event) => {
          if (event.type !== 'settled') return;
          stop.abort();
          settled();
        },
      });
      for (const runId of runIds) expect((await runOf(cluster, runId)).status).toBe('done');
      if (round === 3) {
        stop.abort();
        await worker.done;
        break;
      }
      const [runId] = await submitToRestate([{ task: `Round ${round}`, repo: mkdtempSync(join(cluster.root, 'task-')) }], { ...cluster.server, config: configSchema.parse({}) });
      runIds.push(runId!);
      await ended;
      await worker.done;
    }
  });
});
