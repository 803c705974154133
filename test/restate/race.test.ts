import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { RACE_OBJECT } from '../../src/hosts/restate/model.js';
import type { RaceFile } from '../../src/persisted/race-file.js';
import { evidenceFrom } from '../../src/race/decision.js';
import { rankAttempts } from '../../src/race/rank.js';
import { obra, ROOT } from '../helpers/cli.js';
import { agentBin, bareRepository, clusterPerSuite, everything, restateAvailable, startWorker, until, workerReady } from './helpers.js';

/**
 * A race on the Restate engine: `obra submit --engine restate --agents claude,codex,gemini` queues one task per
 * attempt (each on its own branch of the --repo-url repository), workers drive them as any task, and once the
 * last attempt has ended ObraRace/<raceId> keeps the decision, once. The attempts are those of the local race
 * test (test/race/race-cli.test.ts): Gemini's fails its check, Claude's passes expensively (the CLI reports $0.05
 * a call), Codex's passes cheaply (its tokens priced by agent.prices, an estimate): Codex's wins.
 */

const FAKE = (cli: string) => join(ROOT, 'fixtures', `fake-${cli}`);
const DONE = 'The result is in place.\nSTATUS: DONE';

describe.runIf(restateAvailable('test/restate/race.test.ts'))('Restate: a race of three agents', () => {
  const suite = clusterPerSuite('obra-restate-race-');

  it('decides once, when the last attempt ends: the winner and reasons are the local ranking of the same evidence; status shows the attempts ranked', async () => {
    const { cluster, workers } = suite();
    const remote = await bareRepository(mkdtempSync(join(cluster.root, 'repo-')));
    const claude = agentBin(cluster, 'race', { FAKE_CLAUDE_REPLIES: JSON.stringify([{ result: DONE, files: { 'result.txt': 'ok\n' }, cost_usd: 0.05 }]) });
    const codex = agentBin(cluster, 'race', { FAKE_CODEX_REPLIES: JSON.stringify([{ text: DONE, files: { 'result.txt': 'ok\n' } }]) }, FAKE('codex'));
    const geminiState = join(cluster.root, 'gemini-state');
    mkdirSync(geminiState);
    const gemini = agentBin(cluster, 'race', { FAKE_GEMINI_STATE_DIR: geminiState, FAKE_GEMINI_REPLIES: JSON.stringify([{ text: DONE, files: { 'result.txt': 'wrong\n' } }]) }, FAKE('gemini'));
    const config = join(cluster.root, 'race.yaml');
    writeFileSync(
      config,
      [
        'agent:',
        `  local: { command: ${claude} }`,
        `  codex: { command: ${codex} }`,
        `  gemini: { command: ${gemini} }`,
        '  prices: { codex: { input: 1, output: 2 } }',
        'task:',
        '  max_iterations: 2',
        '  checks: ["grep -qx ok result.txt"]',
      ].join('\n'),
    );
    const worker = startWorker(cluster, 'racer', ['--concurrency', '3']);
    workers.push(worker);
    let said = '';
    worker.all?.on('data', (chunk: Buffer) => (said += chunk.toString()));
    await workerReady(worker);

    const submitted = await obra(['submit', '--engine', 'restate', '--task', 'Write ok into result.txt', '--agents', 'claude,codex,gemini', '--repo-url', remote, '--config', config, '--json', ...cluster.flags], { cwd: cluster.root });
    expect(submitted.exitCode, submitted.stderr).toBe(0);
    const { raceId, runIds } = JSON.parse(submitted.stdout) as { raceId: string; runIds: string[] };
    expect(runIds).toEqual([1, 2, 3].map((n) => `${raceId}-${n}`));
    const [claudeRun, codexRun, geminiRun] = runIds as [string, string, string];

    // (The worker's log goes with a failure: what its drives said.)
    const decision = (await until('the race to be decided', () => cluster.client.call<RaceFile | null>(RACE_OBJECT, raceId, 'get'), (d) => d !== null).catch((error: Error) => {
      throw new Error(`${error.message}\nthe worker said:\n${said}`);
    }))!;
    const kept = await Promise.all(runIds.map((id) => everything(cluster, id)));
    expect(kept.map((k) => [k.run.agentKind, k.run.status, k.run.race])).toEqual([
      ['claude', 'done', { id: raceId, attempt: 1, of: 3 }],
      ['codex', 'done', { id: raceId, attempt: 2, of: 3 }],
      ['gemini', 'max_iterations', { id: raceId, attempt: 3, of: 3 }],
    ]);

    // The evidence is each attempt's, from the records Restate keeps; the ranking is the local engine's of it.
    const evidence = kept.map((k) => evidenceFrom({ runId: k.run.runId, attempt: k.run.race!.attempt, agent: k.run.agentKind!, status: k.run.status, records: k.iterations }));
    const local = rankAttempts(evidence);
    expect(decision.ranked).toEqual(local.ranked);
    expect([decision.winner, decision.reasons]).toEqual([local.winner, local.reasons]);
    expect(decision.winner).toBe(codexRun);
    expect(decision.ranked.map((e) => [e.runId, e.checksPassed, e.checksTotal, e.costEstimated])).toEqual([
      [codexRun, 1, 1, true],
      [claudeRun, 1, 1, false],
      [geminiRun, 0, 1, false],
    ]);
    const cheap = decision.ranked[0]!.costUsd;
    expect(cheap).toBeGreaterThan(0);
    expect(cheap).toBeLessThan(0.05);
    expect(decision.reasons).toEqual([
      `beats attempt 1 (claude, ${claudeRun}): cheaper (~$${cheap.toFixed(4)} against $0.0500)`,
      `beats attempt 3 (gemini, ${geminiRun}): ended done (against max_iterations)`,
    ]);

    // Recorded once: deciding again reads the one kept (the attempts' ends and the worker asked already).
    const again = await cluster.client.decideRace(raceId);
    expect(again).toEqual({ decision, fresh: false });
    // The worker that ended the last attempt says so in its log.
    await until('the worker to tell of the decision', async () => said, (text) => text.includes(`race ${raceId} decided:`));
    expect(said).toContain(`race ${raceId} decided: winner ${codexRun} — ${decision.reasons.join('; ')}\n`);

    // Status: the attempts side by side, best first, each saying why; the winner's branch is in the repository.
    const status = await obra(['status', '--engine', 'restate', ...cluster.flags], { cwd: cluster.root });
    expect(status.exitCode, status.stderr).toBe(0);
    expect(status.stdout).toContain(`\nRace ${raceId}: decided — winner ${codexRun} (codex); its branch obra/${codexRun}\n`);
    const raceRows = status.stdout.split('\n').filter((l) => /^ {2}\d/.test(l));
    expect(raceRows.map((l) => l.trim().split(/\s+/).slice(0, 4))).toEqual([
      ['1', '★', codexRun, 'codex'],
      ['2', claudeRun, 'claude', 'done'],
      ['3', geminiRun, 'gemini', 'max_iterations'],
    ]);
    expect(raceRows[1]).toContain(`behind attempt 2 (codex): cheaper (~$${cheap.toFixed(4)} against $0.0500)`);
    const json = JSON.parse((await obra(['status', '--engine', 'restate', '--json', ...cluster.flags], { cwd: cluster.root })).stdout) as { runId: string; race: { id: string; rank: number; winner: boolean; decided: boolean } }[];
    expect(runIds.map((id) => json.find((l) => l.runId === id)!.race).map((r) => [r.id, r.decided, r.rank, r.winner])).toEqual([
      [raceId, true, 2, false],
      [raceId, true, 1, true],
      [raceId, true, 3, false],
    ]);
    const branch = await execa('git', ['show', `obra/${codexRun}:result.txt`], { cwd: remote });
    expect(branch.stdout.trim()).toBe('ok');
  }, 90_000);

  it("an attempt's end tells its race itself: two attempts cancelled before any worker took them are decided, with no winner", async () => {
    const { cluster, workers } = suite();
    if (!workers.length) {
      workers.push(startWorker(cluster, 'racer'));
      await workerReady(workers[0]!);
    }
    const remote = await bareRepository(mkdtempSync(join(cluster.root, 'repo-')));
    // The attempts follow a run that does not end while the test looks: no worker drives them.
    const slow = agentBin(cluster, 'slow', { FAKE_CLAUDE_LATENCY_MS: '60000', FAKE_CLAUDE_REPLIES: JSON.stringify([DONE]) });
    const at = { cwd: cluster.root };
    const first = await obra(['submit', '--engine', 'restate', '--task', 'Take a long time', '--repo-url', remote, '--set', `agent.local.command=${slow}`, ...cluster.flags], at);
    expect(first.exitCode, first.stderr).toBe(0);
    const followed = first.stdout.trim();
    const submitted = await obra(['submit', '--engine', 'restate', '--task', 'Then write ok', '--attempts', '2', '--after', followed, '--repo-url', remote, '--set', `agent.local.command=${slow}`, ...cluster.flags], at);
    expect(submitted.exitCode, submitted.stderr).toBe(0);
    const raceId = submitted.stdout.trim();
    const runIds = [`${raceId}-1`, `${raceId}-2`];
    expect(submitted.stderr).toContain(`Race ${raceId}: 2 attempts (${runIds.join(', ')}); once the last ends, \`obra status --engine restate\` names the winner and its branch.\n`);
    for (const runId of runIds) {
      const cancelled = await obra(['cancel', runId, '--engine', 'restate', ...cluster.flags], at);
      expect(cancelled.stdout.trim()).toBe(`run ${runId} is cancelled`);
    }
    // Nobody but the attempts' own objects asked for the decision (`get` only reads it).
    const decision = (await until('the race to be decided', () => cluster.client.call<RaceFile | null>(RACE_OBJECT, raceId, 'get'), (d) => d !== null))!;
    // Three readers at once then read that one.
    const asked = await Promise.all([1, 2, 3].map(() => cluster.client.decideRace(raceId)));
    expect(asked).toEqual([1, 2, 3].map(() => ({ decision, fresh: false })));
    expect([decision.winner, decision.reasons]).toEqual([null, ['no attempt ended done (attempt 1 (claude) cancelled, attempt 2 (claude) cancelled): nothing to merge']]);
    const status = await obra(['status', '--engine', 'restate', ...cluster.flags], at);
    expect(status.stdout).toContain(`\nRace ${raceId}: decided — no winner (no attempt ended done)\n`);
    await obra(['cancel', followed, '--engine', 'restate', ...cluster.flags], at);
  }, 60_000);
});
