import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readRaceDecision, RunStore, work } from '../../src/index.js';
import { submitBatch } from '../../src/queue/submit.js';
import { agentsPerRun, config, gitRepo, scratch } from '../queue/helpers.js';

/** An attempt that waits for a person has ended for its race: the race is decided without it. */
describe('a race with an attempt waiting for a human', () => {
  it('is decided once the others end, the waiting attempt ranked behind the one done', async () => {
    const s = scratch('obra-race-escalated-');
    const cfg = config({ task: { max_iterations: 1 } });
    const repo = await gitRepo(join(s.root, 'repo'));
    const { runIds, races } = await submitBatch([{ task: 'Race it', repo, attempts: 2 }], { config: cfg, storeDir: s.storeDir });
    const denial = { tool: 'Write', input: '/etc/motd', rule: 'Write(/etc/motd)' };
    const agents = agentsPerRun((runId) => (runId === runIds[0] ? { answer: 'I need to write /etc/motd.\nSTATUS: CONTINUE', denials: [denial] } : 'All done.\nSTATUS: DONE'));
    const news: string[] = [];
    await work({ storeDir: s.storeDir, config: cfg, concurrency: 2, untilIdle: true, agent: agents.agentOf, onNews: (n) => n.type === 'race-decided' && news.push(`${n.raceId} ${n.winner}`) });
    const store = RunStore.open(s.storeDir, { create: false });
    expect(runIds.map((id) => store.peekStatus(id).status)).toEqual(['escalated', 'done']);
    const decision = readRaceDecision(store, races[0]!.raceId)!;
    expect(decision.winner).toBe(runIds[1]);
    expect(decision.reasons).toEqual([`beats attempt 1 (claude, ${runIds[0]}): ended done (against escalated)`]);
    expect(news).toEqual([`${races[0]!.raceId} ${runIds[1]}`]);
  });
});
