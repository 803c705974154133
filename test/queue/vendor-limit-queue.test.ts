import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { configSchema } from '../../src/config/schema.js';
import { RunStore, submitTasks, work, type EngineEvent } from '../../src/index.js';
import { taskLines } from '../../src/queue/board.js';
import { FAKE_CLAUDE, ROOT } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait-for.js';

type UsageLimitEvent = Extract<EngineEvent, { type: 'usage-limit' }>;

describe("one queue, one vendor's usage limit", () => {
  it("parks only that vendor's task: the Codex task waits for the reset while Claude Code's and Gemini CLI's go on and end", async () => {
    const root = mkdtempSync(join(tmpdir(), 'obra-vendor-queue-'));
    const codexHome = join(root, 'codex-home');
    mkdirSync(codexHome);
    const done = 'Finished the work and checked it.\nSTATUS: DONE';
    Object.assign(process.env, {
      HOME: root,
      CLAUDE_CONFIG_DIR: join(root, 'claude-home'),
      CODEX_HOME: codexHome,
      FAKE_CLAUDE_REPLIES: JSON.stringify([done]),
      FAKE_GEMINI_REPLIES: JSON.stringify([done]),
      FAKE_GEMINI_STATE_DIR: join(root, 'gemini-state'),
      // The first Codex call hits the plan's usage limit; every call after it answers.
      FAKE_CODEX_REPLIES: JSON.stringify([{ usage_limit: { resets_in_s: 3600 } }, done]),
    });
    const config = configSchema.parse({ agent: { local: { command: FAKE_CLAUDE }, codex: { command: join(ROOT, 'fixtures/fake-codex') }, gemini: { command: join(ROOT, 'fixtures/fake-gemini') } } });
    const storeDir = join(root, 'store');
    const kinds = ['codex', 'claude', 'gemini', 'claude'] as const;
    const ids = await submitTasks(
      kinds.map((kind, i) => {
        mkdirSync(join(root, `t${i}`));
        return { task: `task ${i}`, repo: join(root, `t${i}`), agentKind: kind };
      }),
      { config, storeDir },
    );
    const clock = new SimulatedClock();
    clock.set(Date.now());
    const limits: { runId: string; event: UsageLimitEvent }[] = [];
    const working = work({ storeDir, config, concurrency: 4, untilIdle: true, clock, onEvent: (runId, event) => event.type === 'usage-limit' && limits.push({ runId, event }) });

    const store = RunStore.open(storeDir, { create: false });
    const statusOf = (id: string) => store.peekStatus(id).status;
    // Claude Code's and Gemini CLI's tasks end while the Codex account is limited, its task parked.
    await waitFor(() => [1, 2, 3].every((i) => statusOf(ids[i]!) === 'done') && limits.length === 1, { what: 'the Claude and Gemini tasks done, the Codex limit hit', timeoutMs: 20_000 });
    const parked = taskLines(storeDir).find((l) => l.runId === ids[0]);
    expect(parked).toMatchObject({ status: 'running', agent: 'codex' });
    expect(parked!.waitingFor).toMatch(/^the usage limit to reset, until \d\d:\d\d:\d\d UTC$/);
    expect(limits.map((l) => l.runId)).toEqual([ids[0]]);
    const dueAt = limits[0]!.event.dueAt!;
    expect(JSON.parse(readFileSync(join(storeDir, 'limits.codex.json'), 'utf8')).usageLimit).toMatchObject({ resetsAt: limits[0]!.event.resetsAt });
    expect(existsSync(join(storeDir, 'limits.json'))).toBe(false);
    expect(existsSync(join(storeDir, 'limits.gemini.json'))).toBe(false);

    clock.set(dueAt);
    const result = await working;
    expect(result.worst).toBe('done');
    expect(ids.map(statusOf)).toEqual(['done', 'done', 'done', 'done']);
  }, 60_000);
});
