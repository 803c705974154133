import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { taskLines } from '../../src/queue/board.js';
import { CLI, FAKE_CLAUDE, obra, sandbox } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait-for.js';
import { gitOut, gitRepo } from '../queue/helpers.js';

/**
 * A race whose worker is killed (SIGKILL) mid-race, two attempts in their second agent call and the third still
 * queued: the next worker finishes every attempt (one commit per iteration each) and records one decision, told
 * once. A worker killed after the last attempt ended but before the decision was on disk (its file gone) leaves
 * it to the next worker, which derives the same decision.
 */

const replies = (secondTurnMs: number) =>
  JSON.stringify([
    { result: 'Wrote the first part.\nSTATUS: CONTINUE', files: { 'part-1.txt': 'first\n' }, latency_ms: 100 },
    { result: 'Wrote the second part.\nSTATUS: DONE', files: { 'part-2.txt': 'second\n' }, latency_ms: secondTurnMs },
  ]);

type Decision = { raceId: string; winner: string; ranked: unknown[]; reasons: string[] };

describe('a race and a killed worker', () => {
  it('survives a SIGKILL of obra work: one winner, one decision told once, one commit per iteration per attempt', async () => {
    const box = sandbox();
    const env = { ...box.env, OBRA_CLAUDE_BIN: FAKE_CLAUDE, FAKE_CLAUDE_REPLIES: replies(120_000), FAKE_CLAUDE_REPLY_BY: 'turn' };
    const repo = await gitRepo(join(box.dir, 'repo'));
    const storeDir = join(box.dir, 'store');
    const at = { cwd: box.dir, env };
    const submitted = await obra(['submit', '--task', 'Write the two parts', '--attempts', '3', '--repo', repo, '--db', storeDir, '--json'], at);
    expect(submitted.exitCode, submitted.stderr).toBe(0);
    const { raceId, runIds } = JSON.parse(submitted.stdout) as { raceId: string; runIds: string[] };

    const worker = execa('node', [CLI, 'work', '--db', storeDir, '--concurrency', '2'], { cwd: box.dir, env, reject: false });
    await waitFor(
      () => {
        const lines = taskLines(storeDir);
        const inSecondCall = lines.filter((l) => l.status === 'running' && l.state === 'running / awaitingAgent' && l.iteration === 2);
        return inSecondCall.length === 2 && lines.some((l) => l.status === 'queued');
      },
      { what: 'two attempts in their second call, the third queued', timeoutMs: 30_000 },
    );
    worker.kill('SIGKILL');
    expect((await worker).signal).toBe('SIGKILL');
    expect(readdirSync(storeDir)).not.toContain('races');
    const status = (await obra(['status', '--db', storeDir], at)).stdout;
    expect(status).toContain(`\nRace ${raceId}: 0 of 3 attempts ended; ranked when the last ends\n`);
    // In attempt order until decided; the worker took the attempts in queue order (1 and 2 first).
    expect(status.split('\n').filter((l) => /^ {2}- /.test(l)).map((l) => l.trim().split(/\s+/).slice(1, 4))).toEqual([
      [runIds[0], 'claude', 'interrupted'],
      [runIds[1], 'claude', 'interrupted'],
      [runIds[2], 'claude', 'queued'],
    ]);
    // Not decided: diff of the race names what has not ended.
    expect((await obra(['diff', raceId, '--db', storeDir], at)).stderr).toMatch(new RegExp(`^obra: race ${raceId} is not decided yet: .*\\(interrupted\\).*\\(queued\\)`));

    const quick = { cwd: box.dir, env: { ...env, FAKE_CLAUDE_REPLIES: replies(200) } };
    const again = await obra(['work', '--db', storeDir, '--until-idle', '--concurrency', '2'], quick);
    expect(again.exitCode, again.stderr).toBe(0);
    const decisionPath = join(storeDir, 'races', `${raceId}.json`);
    const decision = JSON.parse(readFileSync(decisionPath, 'utf8')) as Decision;
    expect(runIds).toContain(decision.winner);
    expect(again.stderr.match(/^race .* decided: .*$/gm)).toEqual([`race ${raceId} decided: winner ${decision.winner} — ${decision.reasons.join('; ')}`]);
    for (const id of runIds) {
      expect(await gitOut(repo, 'log', '--format=%s', `main..obra/${id}`)).toBe(
        [`obra ${id} iteration 2: done — Wrote the second part.`, `obra ${id} iteration 1: proceed — Wrote the first part.`].join('\n'),
      );
    }
    // Decided once: the next worker says nothing of it.
    const third = await obra(['work', '--db', storeDir, '--until-idle'], quick);
    expect(third.stderr).not.toContain('decided');

    // Killed after the last attempt ended, before the decision was written: the next worker decides the same.
    rmSync(decisionPath);
    const fourth = await obra(['work', '--db', storeDir, '--until-idle'], quick);
    expect(fourth.stderr.match(/^race .* decided: .*$/gm)).toEqual([`race ${raceId} decided: winner ${decision.winner} — ${decision.reasons.join('; ')}`]);
    const rederived = JSON.parse(readFileSync(decisionPath, 'utf8')) as Decision;
    expect({ ...rederived, decidedAt: null }).toEqual({ ...decision, decidedAt: null });
    expect(readdirSync(join(storeDir, 'races'))).toEqual([`${raceId}.json`]);
  }, 90_000);
});
