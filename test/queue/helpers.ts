import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import type { AgentCallRequest } from '../../src/agents/agent.js';
import { ScriptedAgent, type ScriptedReply } from '../../src/agents/scripted-agent.js';
import { configSchema, type ConfigInput } from '../../src/config/schema.js';
import { RunStore } from '../../src/store/run-store.js';

/** A scratch folder with a store, and one plain folder per task (two queued tasks never share one). */
export function scratch(prefix = 'obra-queue-') {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const storeDir = join(root, 'store');
  let folders = 0;
  return {
    root,
    storeDir,
    folder(name = `task-${++folders}`) {
      const dir = join(root, name);
      mkdirSync(dir, { recursive: true });
      return dir;
    },
  };
}

export const config = (input: ConfigInput = {}) => configSchema.parse(input);

/**
 * One scripted agent per run, made on demand: `replies(runId, call)` answers the run's n-th call (0-based).
 * Every call is logged with its run and its start and end times.
 */
export function agentsPerRun(replies: (runId: string, call: number, request: AgentCallRequest) => ScriptedReply, options: { latencyMs?: number | ((runId: string) => number); countsAsApiCall?: boolean } = {}) {
  const calls: { runId: string; startedAt: number; finishedAt: number }[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const agents = new Map<string, ScriptedAgent>();
  const agentOf = (runId: string) => {
    let agent = agents.get(runId);
    if (!agent) {
      const latencyMs = typeof options.latencyMs === 'function' ? options.latencyMs(runId) : options.latencyMs;
      const scripted = new ScriptedAgent((request, call) => replies(runId, call, request), { latencyMs, countsAsApiCall: options.countsAsApiCall });
      const original = scripted.call.bind(scripted);
      scripted.call = async (request) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        const startedAt = Date.now();
        try {
          return await original(request);
        } finally {
          inFlight--;
          calls.push({ runId, startedAt, finishedAt: Date.now() });
        }
      };
      agents.set(runId, (agent = scripted));
    }
    return agent;
  };
  return { agentOf, calls, maxInFlight: () => maxInFlight };
}

/** A run's transitions: [first, last] journal times. */
export function journalSpan(storeDir: string, runId: string): [number, number] {
  const handle = RunStore.open(storeDir, { create: false }).openRun(runId);
  try {
    const entries = handle.readJournal();
    return [entries[0]!.at, entries.at(-1)!.at];
  } finally {
    handle.close();
  }
}

/** The most intervals that overlap at one moment. */
export function maxOverlap(spans: [number, number][]): number {
  const edges = spans.flatMap(([from, to]) => [
    [from, 1],
    [to, -1],
  ]);
  // At a tie an end comes before a start: touching intervals do not overlap.
  edges.sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!);
  let now = 0;
  let most = 0;
  for (const [, delta] of edges) most = Math.max(most, (now += delta!));
  return most;
}

/** A small git repository with one commit on `main`. */
export async function gitRepo(dir: string, files: Record<string, string> = { 'README.md': '# demo\n' }): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const git = (...args: string[]) => execa('git', ['-c', 'user.name=Test', '-c', 'user.email=test@localhost', '-c', 'commit.gpgsign=false', ...args], { cwd: dir });
  await git('init', '-q', '-b', 'main');
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  await git('add', '.');
  await git('commit', '-q', '-m', 'initial');
  return dir;
}

export async function gitOut(dir: string, ...args: string[]): Promise<string> {
  return (await execa('git', args, { cwd: dir })).stdout.trim();
}
