import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { describe, expect, it } from 'vitest';
import { continuationPrompt } from '../../src/engine/effects.js';
import { CLI, FAKE_CLAUDE, obra, sandbox } from '../helpers/cli.js';
import { gitOut, gitRepo } from '../queue/helpers.js';
import { agentsLeftAfter, seeded } from './soak-helpers.js';

/**
 * The local engine's soak: eight worktree tasks of three iterations each, driven by `obra work`, whose process
 * alone is SIGKILLed at random moments (as an OOM kill would: its agent processes are not killed with it by
 * anyone else), four times, then driven to the end. Every task ends done, with exactly one commit per iteration
 * on its branch, no prompt twice in any session's conversation, records that match the journal (replay), and no
 * agent process alive after the worker that started it.
 */
const TASKS = 8;
const KILLS = 4;

describe('soak: obra work killed at random', () => {
  it('ends every task done, one commit and one prompt per iteration, no agent outliving its worker', { timeout: 240_000 }, async () => {
    const random = seeded(Number(process.env.OBRA_SOAK_SEED ?? Date.now() % 100_000));
    const s = sandbox();
    const log = join(s.dir, 'fake.log');
    const replies = [1, 2, 3].map((turn) => ({ result: `Wrote part ${turn}.\nSTATUS: ${turn === 3 ? 'DONE' : 'CONTINUE'}`, files: { [`part-${turn}.txt`]: `part ${turn}\n` }, latency_ms: 300 + 150 * turn }));
    const env = { ...s.env, PATH: process.env.PATH ?? '', OBRA_CLAUDE_BIN: FAKE_CLAUDE, FAKE_CLAUDE_REPLIES: JSON.stringify(replies), FAKE_CLAUDE_REPLY_BY: 'turn', FAKE_CLAUDE_LOG: log };
    const repo = await gitRepo(join(s.dir, 'repo'));
    const runIds: string[] = [];
    for (let i = 1; i <= TASKS; i++) {
      const submitted = await obra(['submit', '--task', `Write the three parts of module ${i}`, '--json'], { cwd: repo, env });
      expect(submitted.exitCode, submitted.stderr).toBe(0);
      runIds.push((JSON.parse(submitted.stdout) as { runId: string }).runId);
    }

    for (let kill = 1; kill <= KILLS; kill++) {
      const worker: ResultPromise = execa('node', [CLI, 'work', '--concurrency', '4'], { cwd: repo, env, extendEnv: false, reject: false });
      await new Promise((resolve) => setTimeout(resolve, 700 + random() * 2_000));
      worker.kill('SIGKILL');
      await worker;
      // Nothing the dead worker started goes on: its agent processes die with it.
      expect(await agentsLeftAfter(s.dir, 5_000), `agent processes alive after kill ${kill}`).toEqual([]);
    }
    const last = await obra(['work', '--until-idle', '--concurrency', '4'], { cwd: repo, env });
    expect(last.exitCode, last.stderr).toBe(0);

    for (const runId of runIds) {
      const shown = JSON.parse((await obra(['show', runId, '--json'], { cwd: repo, env })).stdout) as { status: string; iterations: { index: number }[] };
      expect(shown.status, runId).toBe('done');
      // A continued turn is the fake's next turn: a task may finish in fewer iterations, never with one twice.
      const indexes = shown.iterations.map((i) => i.index);
      expect(indexes).toEqual(indexes.map((_, i) => i + 1));
      // Every iteration writes a file of its own: one commit each, naming it.
      const trailers = (await gitOut(repo, 'log', '--format=%(trailers:key=Obra-Iteration,valueonly)', `main..obra/${runId}`)).split('\n').filter(Boolean);
      expect(trailers, runId).toEqual(indexes.map((i) => `${runId}/${i}`).reverse());
      const replay = await obra(['replay', runId], { cwd: repo, env });
      expect(replay.exitCode, `${runId}: ${replay.stderr}`).toBe(0);
    }
    // Every conversation holds each of its prompts once (a cut turn is continued, not asked again).
    const projects = join(s.dir, '.claude', 'projects');
    const transcripts = readdirSync(projects).flatMap((p) => readdirSync(join(projects, p)).filter((f) => f.endsWith('.jsonl')).map((f) => join(projects, p, f)));
    expect(transcripts).toHaveLength(TASKS);
    for (const file of transcripts) {
      const prompts = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; message: { content: string } }).filter((e) => e.type === 'user').map((e) => e.message.content).filter((p) => p !== continuationPrompt());
      expect(new Set(prompts).size, file).toBe(prompts.length);
    }
    expect(existsSync(log)).toBe(true);
  });
});
