import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { RunStore, submitTasks, work } from '../../src/index.js';
import { FAKE_CLAUDE, ROOT } from '../helpers/cli.js';

const FAKE_CODEX = join(ROOT, 'fixtures/fake-codex');
type Logged = { startedAt: number; at: number; outcome: string };
const logOf = (path: string): Logged[] => (existsSync(path) ? readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Logged) : []);

describe('one queue, two agent CLIs', () => {
  it('Claude Code and Codex tasks side by side under one agent.max_concurrent_calls: every task done, never two calls at once', async () => {
    const root = mkdtempSync(join(tmpdir(), 'obra-mixed-'));
    const codexHome = join(root, 'codex-home');
    mkdirSync(codexHome);
    // The fakes read their steering from the environment the agents inherit.
    Object.assign(process.env, {
      CLAUDE_CONFIG_DIR: join(root, 'claude-home'),
      CODEX_HOME: codexHome,
      FAKE_CLAUDE_LOG: join(root, 'claude.log'),
      FAKE_CODEX_LOG: join(root, 'codex.log'),
      FAKE_CLAUDE_LATENCY_MS: '250',
      FAKE_CODEX_LATENCY_MS: '250',
      FAKE_CLAUDE_REPLIES: JSON.stringify(['Finished the work and checked it.\nSTATUS: DONE']),
      FAKE_CODEX_REPLIES: JSON.stringify(['Finished the work and checked it.\nSTATUS: DONE']),
    });
    const config = configSchema.parse({ agent: { local: { command: FAKE_CLAUDE }, codex: { command: FAKE_CODEX }, max_concurrent_calls: 1 } });
    const store = join(root, 'store');
    const folders = ['c1', 'x1', 'c2', 'x2'].map((name) => {
      mkdirSync(join(root, name));
      return join(root, name);
    });
    const ids = await submitTasks(
      folders.map((repo, i) => ({ task: `task ${i}`, repo, agentKind: i % 2 ? ('codex' as const) : ('claude' as const) })),
      { config, storeDir: store },
    );
    const result = await work({ storeDir: store, config, concurrency: 4, untilIdle: true });
    expect(result.worst).toBe('done');
    const runs = RunStore.open(store);
    expect(ids.map((id) => [runs.peekStatus(id).file.agent.kind, runs.peekStatus(id).status])).toEqual([
      ['claude', 'done'], ['codex', 'done'], ['claude', 'done'], ['codex', 'done'],
    ]);
    const calls = [...logOf(join(root, 'claude.log')), ...logOf(join(root, 'codex.log'))].filter((c) => c.outcome === 'answer').sort((a, b) => a.startedAt - b.startedAt);
    expect(calls.length).toBeGreaterThanOrEqual(4);
    for (let i = 1; i < calls.length; i++) expect(calls[i]!.startedAt, 'a call started before the one before it ended').toBeGreaterThanOrEqual(calls[i - 1]!.at);
  });
});
