import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createMachine, type AnyStateMachine } from 'xstate';
import { describe, expect, it } from 'vitest';
import { iterationMachine } from '../../machines/iteration.machine.js';
import { taskMachine } from '../../machines/task.machine.js';
import { describeMachine } from '../../src/graph/machine-graph.js';
import { machineConfigs, studioCode } from '../../src/graph/machine-export.js';
import { mermaidCharts, mermaidOf, readmeChart, updateReadmeCharts } from '../../src/graph/mermaid.js';
import { obra, ROOT, sandbox } from '../helpers/cli.js';

const machines: [string, AnyStateMachine][] = [
  ['iteration', iterationMachine],
  ['task', taskMachine],
];

describe('machine export', () => {
  it.each(machines)('the %s config rebuilds a machine with exactly the same states and transitions', (name, machine) => {
    const config = machineConfigs()[name as 'iteration' | 'task'];
    const rebuilt = createMachine(config as Parameters<typeof createMachine>[0]);
    expect(describeMachine(rebuilt)).toEqual(describeMachine(machine));
  });

  it('names the guards, delays and machine-level events as the code does', () => {
    const { iteration, task } = machineConfigs() as Record<string, any>;
    expect(iteration.states.awaitingAgent.invoke.src).toBe('callAgent');
    expect(iteration.states.awaitingAgent.invoke.onDone).toMatchObject({ target: 'routingOutcome', actions: ['recordCall'] });
    const routes = iteration.states.routingOutcome.always as { target: string; guard?: string }[];
    // XState's and([...]) guards read as text.
    expect(routes.filter((t) => t.target === 'retryingSessionLock').map((t) => t.guard)).toContain('sessionBusy and canRetry');
    expect(routes.find((t) => t.target === 'suspended')?.guard).toBe('usageLimited');
    expect(routes.at(-1)).toEqual({ target: 'validating' });
    expect(iteration.states.retryingSessionLock.after.backoffDelay.target).toBe('awaitingAgent');
    expect(iteration.states.retryingSessionLock.on.RESUMED).toEqual({ target: 'retryingSessionLock', reenter: true });
    expect(iteration.states.complete).toEqual({ type: 'final' });
    expect(iteration.states.suspended).toMatchObject({ type: 'final', tags: ['resting'] });
    expect(task.states.waitingForUsageLimit.after.usageLimitLeft.target).toBe('running');
    expect(task.on.CANCEL.target).toBe('.cancelled');
    expect(task.states.running.invoke).toMatchObject({ src: 'iteration', id: 'iteration' });
  });

  it('obra machines --json prints both configs; --studio prints importable createMachine code', async () => {
    const box = sandbox();
    const json = await obra(['machines', '--json'], { cwd: box.dir, env: box.env });
    expect(json.exitCode, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(machineConfigs());
    const one = await obra(['machines', 'task', '--json'], { cwd: box.dir, env: box.env });
    expect(JSON.parse(one.stdout)).toEqual(machineConfigs().task);
    const studio = await obra(['machines', '--studio'], { cwd: box.dir, env: box.env });
    expect(studio.stdout).toBe(studioCode().trimEnd());
    expect(studio.stdout).toContain('export const iterationMachine = createMachine({');
    const bad = await obra(['machines', 'loop'], { cwd: box.dir, env: box.env });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toBe('obra: unknown machine "loop" — choose iteration or task');
  });
});

describe('mermaid charts', () => {
  it('draws every state and one labelled arrow per pair of states', () => {
    const chart = mermaidOf(describeMachine(iterationMachine));
    expect(chart.split('\n')[0]).toBe('stateDiagram-v2');
    expect(chart).toContain('  [*] --> building');
    expect(chart).toContain('  retryingSessionLock --> retryingSessionLock : RESUMED (re-enter)');
    expect(chart).toContain('  complete --> [*]');
    for (const state of Object.keys(iterationMachine.root.states)) expect(chart).toMatch(new RegExp(`^  ${state} --> `, 'm'));
    const arrows = chart.split('\n').filter((l) => / --> (?!\[\*\])/.test(l) && !l.includes('[*] -->'));
    expect(new Set(arrows.map((l) => l.split(' : ')[0])).size).toBe(arrows.length);
  });

  it.each(['iteration', 'task'] as const)("docs/statecharts.md's %s chart is generated from the machine (else run `npm run docs:machines`)", (name) => {
    const readme = readFileSync(join(ROOT, 'docs/statecharts.md'), 'utf8');
    expect(readmeChart(readme, name), `docs/statecharts.md's ${name} chart drifted from the machine: run npm run docs:machines`).toBe(mermaidCharts()[name]);
  });

  it('npm run docs:machines rewrites only the chart blocks', () => {
    const readme = readFileSync(join(ROOT, 'docs/statecharts.md'), 'utf8');
    const stale = readme.replace(/(<!-- mermaid:task:start -->\n```mermaid\n)[\s\S]*?(\n```)/, '$1stateDiagram-v2\n  [*] --> running$2');
    expect(readmeChart(stale, 'task')).not.toBe(mermaidCharts().task);
    const fixed = updateReadmeCharts(stale);
    expect(readmeChart(fixed, 'task')).toBe(mermaidCharts().task);
    expect(fixed).toBe(updateReadmeCharts(readme));
  });
});
