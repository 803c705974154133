import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RunStore } from '../../src/index.js';
import { FAKE_CLAUDE, obra, ROOT, sandbox } from '../helpers/cli.js';
import { gitOut, gitRepo } from '../queue/helpers.js';

/**
 * `obra submit --agents claude,codex,gemini`: three attempts of one task, one per agent CLI (the fakes), in their
 * own worktrees. Gemini's fails its check, Claude's passes expensively (the CLI reports $0.05 a call), Codex's
 * passes cheaply (its tokens priced by agent.prices, an estimate): Codex's wins, and the reasons say why.
 */

const FAKE = (cli: string) => join(ROOT, 'fixtures', `fake-${cli}`);
const PASSES = { 'result.txt': 'ok\n' };

describe('a race of three agents', () => {
  it('ranks the attempts by the evidence: the cheap pass beats the expensive one, the failed check comes last; diff and merge take the winner', async () => {
    const box = sandbox();
    const repo = await gitRepo(join(box.dir, 'repo'));
    // A webhook that keeps what it is sent.
    const notices: { event: string; runId: string; status: string; reason: string }[] = [];
    const hook = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        notices.push(JSON.parse(body));
        response.end('ok');
      });
    });
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
    const hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/`;
    const codexHome = join(box.dir, 'codex-home');
    mkdirSync(codexHome);
    const done = (files: Record<string, string>, extra: Record<string, unknown> = {}) => JSON.stringify([{ result: 'The result is in place.\nSTATUS: DONE', files, ...extra }]);
    const env = {
      ...box.env,
      CODEX_HOME: codexHome,
      FAKE_CLAUDE_REPLIES: done(PASSES, { cost_usd: 0.05 }),
      FAKE_CODEX_REPLIES: JSON.stringify([{ text: 'The result is in place.\nSTATUS: DONE', files: PASSES }]),
      FAKE_GEMINI_REPLIES: JSON.stringify([{ text: 'The result is in place.\nSTATUS: DONE', files: { 'result.txt': 'wrong\n' } }]),
      FAKE_GEMINI_STATE_DIR: join(box.dir, 'gemini-state'),
    };
    writeFileSync(
      join(box.dir, 'obra.yaml'),
      [
        'agent:',
        `  local: { command: ${FAKE_CLAUDE} }`,
        `  codex: { command: ${FAKE('codex')} }`,
        `  gemini: { command: ${FAKE('gemini')} }`,
        '  prices: { codex: { input: 1, output: 2 } }',
        `notify: { webhooks: ["${hookUrl}"], desktop: false, bell: false }`,
        'task:',
        '  max_iterations: 2',
        '  checks: ["grep -qx ok result.txt"]',
      ].join('\n'),
    );
    const at = { cwd: box.dir, env };
    const submitted = await obra(['submit', '--task', 'Write ok into result.txt', '--agents', 'claude,codex,gemini', '--repo', repo, '--db', 'store', '--json'], at);
    expect(submitted.exitCode, submitted.stderr).toBe(0);
    const { raceId, runIds } = JSON.parse(submitted.stdout) as { raceId: string; runIds: string[] };
    expect(runIds).toEqual([1, 2, 3].map((n) => `${raceId}-${n}`));

    // Not decided while the attempts wait: diff of the race says so.
    const early = await obra(['diff', raceId, '--db', 'store'], at);
    expect(early.exitCode).toBe(2);
    expect(early.stderr).toBe(`obra: race ${raceId} is not decided yet: ${runIds.map((id) => `${id} (queued)`).join(', ')} have not ended — \`obra status\` shows the race; or pick an attempt's run id`);

    const worked = await obra(['work', '--db', 'store', '--until-idle', '--concurrency', '3'], at);
    // Gemini's attempt ended max_iterations: the worst status is the exit code.
    expect(worked.exitCode, worked.stderr).toBe(4);
    const [claude, codex, gemini] = runIds as [string, string, string];
    const store = RunStore.open(join(box.dir, 'store'), { create: false });
    expect(runIds.map((id) => [store.peekStatus(id).file.agent.kind, store.peekStatus(id).status])).toEqual([
      ['claude', 'done'],
      ['codex', 'done'],
      ['gemini', 'max_iterations'],
    ]);
    const decision = JSON.parse(readFileSync(join(box.dir, 'store', 'races', `${raceId}.json`), 'utf8')) as { winner: string; reasons: string[]; ranked: { runId: string; costUsd: number; costEstimated: boolean; checksPassed: number; checksTotal: number }[] };
    expect(decision.winner).toBe(codex);
    expect(decision.ranked.map((e) => [e.runId, e.checksPassed, e.checksTotal, e.costEstimated])).toEqual([
      [codex, 1, 1, true],
      [claude, 1, 1, false],
      [gemini, 0, 1, false],
    ]);
    const cheap = decision.ranked[0]!.costUsd;
    expect(cheap).toBeGreaterThan(0);
    expect(cheap).toBeLessThan(0.05);
    expect(decision.reasons).toEqual([
      `beats attempt 1 (claude, ${claude}): cheaper (~$${cheap.toFixed(4)} against $0.0500)`,
      `beats attempt 3 (gemini, ${gemini}): ended done (against max_iterations)`,
    ]);
    expect(worked.stderr.match(/^race .* decided: .*$/gm)).toEqual([`race ${raceId} decided: winner ${codex} — ${decision.reasons.join('; ')}`]);
    // The notice, once, of the winner's run.
    expect(notices.filter((n) => n.event === 'race-decided').map((n) => [n.runId, n.status, n.reason])).toEqual([[codex, 'done', `race ${raceId}: winner ${codex} — ${decision.reasons.join('; ')}`]]);

    // Status: the attempts side by side, best first, each saying why; the sums per agent.
    const status = (await obra(['status', '--db', 'store'], at)).stdout;
    expect(status).toContain(`\nRace ${raceId}: decided — winner ${codex} (codex); \`obra merge ${raceId}\` takes it\n`);
    const raceRows = status.split('\n').filter((l) => /^ {2}\d/.test(l));
    expect(raceRows.map((l) => l.trim().split(/\s+/).slice(0, 4))).toEqual([
      ['1', '★', codex, 'codex'],
      ['2', claude, 'claude', 'done'],
      ['3', gemini, 'gemini', 'max_iterations'],
    ]);
    expect(raceRows[1]).toContain(`behind attempt 2 (codex): cheaper (~$${cheap.toFixed(4)} against $0.0500)`);
    expect(status).toMatch(/\nPer agent .*\n {2}AGENT +TASKS +CALLS +COST +TOKENS\n {2}claude +1 +1 +\$0\.0500 +/);
    // --by-agent: only those sums, as the table ends with them; with --json, one entry per agent kind.
    expect((await obra(['status', '--db', 'store', '--by-agent'], at)).stdout).toBe(status.slice(status.indexOf('\nPer agent')));
    const sums = JSON.parse((await obra(['status', '--db', 'store', '--by-agent', '--json'], at)).stdout) as { agent: string; tasks: number; usage: { calls: number } }[];
    expect(sums.map((s) => [s.agent, s.tasks]).sort()).toEqual([['claude', 1], ['codex', 1], ['gemini', 1]]);
    const json = JSON.parse((await obra(['status', '--db', 'store', '--json'], at)).stdout) as { runId: string; agent: string; race: { rank: number; winner: boolean } }[];
    expect(runIds.map((id) => json.find((l) => l.runId === id)).map((l) => [l!.agent, l!.race.rank, l!.race.winner])).toEqual([
      ['claude', 2, false],
      ['codex', 1, true],
      ['gemini', 3, false],
    ]);

    // show of the race: its ranking with the evidence; show of an attempt: its agent, tokens and cost.
    const shownRace = await obra(['show', raceId, '--db', 'store'], at);
    expect(shownRace.stdout.split('\n').slice(0, 4)).toEqual([`Race ${raceId}: decided — winner ${codex}`, ...decision.reasons.map((r) => `  ${r}`), '']);
    expect(shownRace.stdout).toContain(`#3 attempt 3: ${gemini} (gemini) max_iterations\n  checks 0/1; judge -; quality `);
    expect(JSON.parse((await obra(['show', raceId, '--db', 'store', '--json'], at)).stdout)).toMatchObject({ raceId, decided: true, winner: codex, reasons: decision.reasons });
    expect((await obra(['show', codex, '--db', 'store'], at)).stdout).toMatch(new RegExp(`\nAgent: codex; 1 call\\(s\\), \\S+ in \\(\\S+ cached\\) / \\S+ out, ~\\$${cheap.toFixed(4).replace('.', '\\.')} \\(~: estimated from agent\\.prices\\)\n`));

    // diff and merge of the race take the winner; the other branches stay.
    const diff = await obra(['diff', raceId, '--db', 'store'], at);
    expect(diff.exitCode, diff.stderr).toBe(0);
    expect(diff.stderr).toBe(`race ${raceId}: its winner is ${codex}`);
    expect(diff.stdout).toMatch(/^\+\+\+ b\/result\.txt\n@@ .* @@\n\+ok\n/m);
    const merged = await obra(['merge', raceId, '--db', 'store'], at);
    expect(merged.exitCode, merged.stderr).toBe(0);
    expect(readFileSync(join(repo, 'result.txt'), 'utf8')).toMatch(/^ok\n/);
    expect(await gitOut(repo, 'log', '-1', '--format=%s')).toContain(codex);
    for (const id of [claude, gemini]) expect(await gitOut(repo, 'branch', '--list', `obra/${id}`)).toContain(`obra/${id}`);
    // Decided once: another worker does not decide it again.
    const again = await obra(['work', '--db', 'store', '--until-idle'], at);
    expect(again.stderr).not.toMatch(/decided/);
    expect(readdirSync(join(box.dir, 'store', 'races'))).toEqual([`${raceId}.json`]);
    expect(existsSync(join(box.dir, 'store', 'races', `${raceId}.json`))).toBe(true);
    expect(notices.filter((n) => n.event === 'race-decided')).toHaveLength(1);
    hook.close();
  }, 60_000);
});
