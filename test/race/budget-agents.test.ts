import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { obra, ROOT, sandbox } from '../helpers/cli.js';

/**
 * `budget.max_cost_usd` holds for an agent CLI that reports tokens only (Codex): its calls are priced from
 * `agent.prices` and the run stops once the estimate reaches the budget; without a price the budget could not
 * hold, and the task is refused before anything runs.
 */

describe('a cost budget for a CLI that reports no cost', () => {
  it("stops a Codex task once the estimated cost reaches budget.max_cost_usd, and refuses one with no price", async () => {
    const box = sandbox();
    const codexHome = join(box.dir, 'codex-home');
    mkdirSync(codexHome);
    mkdirSync(join(box.dir, 'work'));
    const env = { ...box.env, CODEX_HOME: codexHome, FAKE_CODEX_REPLIES: JSON.stringify([{ text: 'Part done, more to go.\nSTATUS: CONTINUE' }]) };
    const yaml = (prices: string) => ['agent:', '  kind: codex', `  codex: { command: ${join(ROOT, 'fixtures/fake-codex')} }`, prices, 'budget: { max_cost_usd: 0.002 }', 'task: { max_iterations: 10 }'].join('\n');
    writeFileSync(join(box.dir, 'obra.yaml'), yaml(''));
    const refused = await obra(['run', '--task', 'Do the parts', '--workdir', 'work', '--db', 'store'], { cwd: box.dir, env });
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toBe('obra: budget.max_cost_usd is set, but codex reports tokens and no cost, and agent.prices has no price for it — add agent.prices.codex: { input: <USD per million tokens>, output: <USD per million> }, or the budget could not hold');
    const submitRefused = await obra(['submit', '--task', 'Do the parts', '--repo', 'work', '--db', 'store'], { cwd: box.dir, env });
    expect(submitRefused.stderr).toBe(refused.stderr);

    writeFileSync(join(box.dir, 'obra.yaml'), yaml('  prices: { codex: { input: 1, output: 2 } }'));
    const run = await obra(['run', '--task', 'Do the parts', '--workdir', 'work', '--db', 'store', '--json'], { cwd: box.dir, env });
    expect(run.exitCode, run.stderr).toBe(5);
    const result = JSON.parse(run.stdout) as { status: string; reason: string; totalCostUsd: number; iterations: { costUsd: number; tokens: { costSource: string } }[]; usage: { estimated: boolean; costUsd: number; calls: number }; agent: string };
    expect(result.status).toBe('budget_exceeded');
    expect(result.agent).toBe('codex');
    expect(result.reason).toMatch(/^cost budget of \$0\.002 reached \(\$0\.00\d+ spent in \d+ iteration\(s\)\)$/);
    // It stopped at the first iteration that reached the budget, and not before.
    expect(result.totalCostUsd).toBeGreaterThanOrEqual(0.002);
    expect(result.totalCostUsd - result.iterations.at(-1)!.costUsd).toBeLessThan(0.002);
    expect(result.iterations.every((it) => it.costUsd > 0 && it.tokens.costSource === 'estimate')).toBe(true);
    expect(result.usage).toMatchObject({ estimated: true, calls: result.iterations.length });
    expect(result.usage.costUsd).toBeCloseTo(result.totalCostUsd, 10);
  }, 30_000);
});
