import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { CodexAgent } from '../../src/agents/codex/codex-agent.js';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import { runTask, type EngineEvent } from '../../src/index.js';
import { until } from '../agents/fake-env.js';

const FAKE_CODEX = resolve(import.meta.dirname, '../../fixtures/fake-codex');
type UsageLimitEvent = Extract<EngineEvent, { type: 'usage-limit' }>;

describe('a usage limit belongs to one vendor\'s account', () => {
  it("Codex's usage limit parks the Codex task only: a Claude task of the same store calls at once", async () => {
    const root = mkdtempSync(join(tmpdir(), 'obra-vendor-limits-'));
    const store = join(root, 'store');
    const codexHome = join(root, 'codex-home');
    for (const dir of [codexHome, join(root, 'a'), join(root, 'b')]) mkdirSync(dir);
    const clock = new SimulatedClock();
    clock.set(Date.now());
    const limits: UsageLimitEvent[] = [];
    const onEvent = (event: EngineEvent) => {
      if (event.type === 'usage-limit') limits.push(event);
    };
    const codex = new CodexAgent({ command: FAKE_CODEX, timeoutMs: 20_000, home: codexHome, env: { FAKE_CODEX_REPLIES: JSON.stringify([{ usage_limit: { resets_in_s: 3600 } }, 'Finished the work and checked it.\nSTATUS: DONE']) } });
    const runA = runTask({ task: 'Codex task', workdir: join(root, 'a'), storeDir: store, clock, onEvent, agent: codex });
    await until(() => limits.length === 1, 15_000, "the Codex task's usage limit");
    expect(limits[0]!.message).toMatch(/^You've hit your usage limit/);
    expect(JSON.parse(readFileSync(join(store, 'limits.codex.json'), 'utf8')).usageLimit).toMatchObject({ resetsAt: limits[0]!.resetsAt });
    expect(existsSync(join(store, 'limits.json'))).toBe(false);

    // Claude's account (limits.json) knows of no limit: its task works now.
    const calls: number[] = [];
    const claude = new ScriptedAgent(() => {
      calls.push(clock.now());
      return 'Finished the work and checked it.\nSTATUS: DONE';
    });
    const doneB = await runTask({ task: 'Claude task', workdir: join(root, 'b'), storeDir: store, clock, onEvent, agent: claude });
    expect(doneB.status).toBe('done');
    expect(calls).toHaveLength(1);
    expect(limits).toHaveLength(1);

    clock.set(limits[0]!.dueAt!);
    expect((await runA).status).toBe('done');
  });
});
