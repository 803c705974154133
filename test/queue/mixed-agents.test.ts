import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { RunStore, submitTasks, work } from '../../src/index.js';
import { usageByAgent } from '../../src/core/usage-totals.js';
import { taskLines } from '../../src/queue/board.js';
import { FAKE_CLAUDE, ROOT } from '../helpers/cli.js';
import { maxOverlap } from './helpers.js';

const FAKE_CODEX = join(ROOT, 'fixtures/fake-codex');
const FAKE_GEMINI = join(ROOT, 'fixtures/fake-gemini');
const FAKE_QWEN = join(ROOT, 'fixtures/fake-qwen');
type Logged = { startedAt: number; at: number; outcome: string };
const logOf = (path: string): Logged[] => (existsSync(path) ? readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Logged) : []);

/**
 * A scratch root whose fakes of `clis` answer "done" after `latencyMs`, logging every call; their sessions and
 * state under the root, never the user's (the fakes read their steering from the environment the agents inherit).
 */
function fakeClis(prefix: string, clis: ('CLAUDE' | 'CODEX' | 'GEMINI' | 'QWEN')[], latencyMs: number): string {
  const root = mkdtempSync(join(tmpdir(), prefix));
  mkdirSync(join(root, 'codex-home'));
  Object.assign(process.env, {
    HOME: root,
    CLAUDE_CONFIG_DIR: join(root, 'claude-home'),
    CODEX_HOME: join(root, 'codex-home'),
    FAKE_GEMINI_STATE_DIR: join(root, 'gemini-state'),
    FAKE_QWEN_STATE_DIR: join(root, 'qwen-state'),
    ...Object.fromEntries(clis.flatMap((cli) => [[`FAKE_${cli}_LOG`, join(root, `${cli.toLowerCase()}.log`)], [`FAKE_${cli}_LATENCY_MS`, String(latencyMs)], [`FAKE_${cli}_REPLIES`, JSON.stringify(['Finished the work and checked it.\nSTATUS: DONE'])]])),
  });
  return root;
}

describe('one queue, four agent CLIs', () => {
  it('Claude Code, Codex, Gemini CLI and Qwen Code tasks side by side under one agent.max_concurrent_calls: every task done, never two calls at once', async () => {
    const root = fakeClis('obra-mixed-', ['CLAUDE', 'CODEX', 'GEMINI', 'QWEN'], 250);
    const config = configSchema.parse({ agent: { local: { command: FAKE_CLAUDE }, codex: { command: FAKE_CODEX }, gemini: { command: FAKE_GEMINI }, qwen: { command: FAKE_QWEN }, max_concurrent_calls: 1 } });
    const store = join(root, 'store');
    const kinds = ['claude', 'codex', 'gemini', 'qwen', 'claude', 'codex'] as const;
    const folders = kinds.map((kind, i) => {
      const name = `${kind}-${i}`;
      mkdirSync(join(root, name));
      return join(root, name);
    });
    const ids = await submitTasks(
      folders.map((repo, i) => ({ task: `task ${i}`, repo, agentKind: kinds[i] })),
      { config, storeDir: store },
    );
    const result = await work({ storeDir: store, config, concurrency: 6, untilIdle: true });
    expect(result.worst).toBe('done');
    const runs = RunStore.open(store);
    expect(ids.map((id) => [runs.peekStatus(id).file.agent.kind, runs.peekStatus(id).status])).toEqual(kinds.map((kind) => [kind, 'done']));
    const calls = ['claude', 'codex', 'gemini', 'qwen'].flatMap((cli) => logOf(join(root, `${cli}.log`))).filter((c) => c.outcome === 'answer').sort((a, b) => a.startedAt - b.startedAt);
    expect(calls.length).toBeGreaterThanOrEqual(kinds.length);
    for (let i = 1; i < calls.length; i++) expect(calls[i]!.startedAt, 'a call started before the one before it ended').toBeGreaterThanOrEqual(calls[i - 1]!.at);
  });
});

describe('three agent CLIs under agent.max_concurrent_calls: 2', () => {
  it('never more than two calls at once across Claude Code, Codex and Gemini CLI (two at once at times), and the sums per agent', async () => {
    const root = fakeClis('obra-bound-', ['CLAUDE', 'CODEX', 'GEMINI'], 400);
    const config = configSchema.parse({ agent: { local: { command: FAKE_CLAUDE }, codex: { command: FAKE_CODEX }, gemini: { command: FAKE_GEMINI }, max_concurrent_calls: 2, prices: { codex: { input: 1, output: 2 } } } });
    const store = join(root, 'store');
    const kinds = ['claude', 'codex', 'gemini', 'claude', 'codex', 'gemini'] as const;
    const ids = await submitTasks(
      kinds.map((kind, i) => {
        mkdirSync(join(root, `t${i}`));
        return { task: `task ${i}`, repo: join(root, `t${i}`), agentKind: kind };
      }),
      { config, storeDir: store },
    );
    const result = await work({ storeDir: store, config, concurrency: 6, untilIdle: true });
    expect(result.worst).toBe('done');
    const calls = ['claude', 'codex', 'gemini'].flatMap((cli) => logOf(join(root, `${cli}.log`))).filter((c) => c.outcome === 'answer');
    expect(calls).toHaveLength(kinds.length);
    expect(maxOverlap(calls.map((c) => [c.startedAt, c.at]))).toBe(2);

    // The sums per agent: two tasks and two calls each; Codex's cost an estimate, Gemini's unknown (no price).
    const lines = taskLines(store).filter((l) => ids.includes(l.runId));
    const sums = Object.fromEntries(usageByAgent(lines).map((s) => [s.agent, s]));
    expect(Object.keys(sums).sort()).toEqual(['claude', 'codex', 'gemini']);
    for (const kind of ['claude', 'codex', 'gemini']) expect(sums[kind]).toMatchObject({ tasks: 2, usage: { calls: 2 } });
    expect(sums.claude!.usage).toMatchObject({ estimated: false, unpricedCalls: 0 });
    expect(sums.codex!.usage).toMatchObject({ estimated: true, unpricedCalls: 0 });
    expect(sums.codex!.usage.costUsd).toBeGreaterThan(0);
    expect(sums.gemini!.usage).toMatchObject({ estimated: false, unpricedCalls: 2, costUsd: 0 });
    for (const kind of ['claude', 'codex', 'gemini']) expect(sums[kind]!.usage.inputTokens).toBeGreaterThan(0);
  }, 60_000);
});
