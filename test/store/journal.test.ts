import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import { configSchema } from '../../src/config/schema.js';
import { resumeRun, runTask } from '../../src/index.js';
import { RunStore } from '../../src/store/run-store.js';
import { tempDir } from '../durability/helpers.js';
import { injectStoreFault } from '../../src/store/durable-file.js';
import type { Durability } from '../../src/engine/recorder.js';

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

/** A long run whose answers are all different (no "stuck"), each a few KB like a real agent's. */
async function longRun(iterations: number, durability: Durability = 'transition') {
  const store = tempDir();
  const agent = new ScriptedAgent((_request, call) => `Step ${call + 1}: changed module ${call % 17} and its tests.\n${'Notes on the change. '.repeat(100)}\nSTATUS: CONTINUE`);
  const config = configSchema.parse({ task: { max_iterations: iterations } });
  const commits: { lines: number; bytes: number; synced: boolean }[] = [];
  const result = await runTask({ task: 'Refactor everything', workdir: store, storeDir: store, agent, config, durability, onJournalCommit: (stats) => commits.push(stats) });
  return { store, result, commits, journal: join(store, 'runs', result.runId, 'journal.jsonl') };
}

afterEach(() => injectStoreFault(null));

describe('the journal', () => {
  it('a transition costs the same bytes at iteration 150 as at iteration 10: the context keeps a window, not the history', async () => {
    const { store, result, journal } = await longRun(150);
    expect(result.status).toBe('max_iterations');
    const raw = readFileSync(journal, 'utf8').trim().split('\n');
    const entries = RunStore.open(store).openRun(result.runId).readJournal();
    expect(entries).toHaveLength(raw.length);
    const sizesOf = (index: number) => entries.flatMap((e, i) => (e.iteration?.index === index ? [raw[i]!.length] : []));
    const early = sizesOf(10);
    const late = sizesOf(150);
    expect(early.length).toBe(late.length);
    expect(median(late) / median(early)).toBeLessThan(1.1);
    expect(Math.max(...late) / Math.max(...early)).toBeLessThan(1.1);
    // The decoded snapshot is bounded too: the task keeps the last `history_window` summaries.
    const snapshotSize = (index: number) => JSON.stringify(entries.filter((e) => e.iteration?.index === index).at(-1)!.snapshot).length;
    expect(snapshotSize(150) / snapshotSize(10)).toBeLessThan(1.1);
    const context = (entries.at(-1)!.snapshot as { context: { recent: unknown[] } }).context;
    expect(context.recent).toHaveLength(5);
  });

  it('`transition`: every line is written and fdatasync\'d before the agent is called (write-ahead, group commit); `strict`: before every next step', async () => {
    /** The journal's writes and syncs, in order, with the agent's calls among them. */
    async function operations(durability: Durability) {
      const ops: ('write' | 'sync' | 'agent')[] = [];
      injectStoreFault((operation, path) => {
        if (path.endsWith('journal.jsonl') && (operation === 'write' || operation === 'sync')) ops.push(operation);
      });
      const agent = new ScriptedAgent((_request, call) => {
        ops.push('agent');
        return `Step ${call + 1}: changed module ${call}.\nSTATUS: CONTINUE`;
      });
      const store = tempDir();
      const commits: { lines: number; synced: boolean }[] = [];
      const result = await runTask({ task: 'Ten steps', workdir: store, storeDir: store, agent, config: configSchema.parse({ task: { max_iterations: 10 } }), durability, onJournalCommit: (stats) => commits.push(stats) });
      injectStoreFault(null);
      expect(result.status).toBe('max_iterations');
      return { ops, commits, lines: commits.reduce((n, c) => n + c.lines, 0) };
    }
    const wal = await operations('transition');
    expect(wal.ops.filter((op) => op === 'agent')).toHaveLength(10);
    wal.ops.forEach((op, i) => {
      if (op !== 'agent') return;
      // Write-ahead: what led to the call (the lines entering awaitingAgent) was written, then synced.
      const before = wal.ops.slice(0, i).filter((o) => o !== 'agent');
      expect(before.slice(-2)).toEqual(['write', 'sync']);
    });
    // Group commit: one fdatasync per iteration (+ the first lines and the end) for all eight of its lines.
    const synced = wal.commits.filter((c) => c.synced).length;
    expect(synced).toBeGreaterThanOrEqual(10);
    expect(synced).toBeLessThanOrEqual(12);
    expect(wal.ops.filter((op) => op === 'sync')).toHaveLength(synced);

    const strict = await operations('strict');
    expect(strict.lines).toBe(wal.lines);
    const journalOps = strict.ops.filter((op) => op !== 'agent');
    // Every write is followed by its fdatasync before anything else happens.
    journalOps.forEach((op, i) => op === 'write' && expect(journalOps[i + 1]).toBe('sync'));
    expect(strict.commits.filter((c) => c.lines > 0).every((c) => c.synced)).toBe(true);
    expect(strict.commits.filter((c) => c.synced).length).toBeGreaterThanOrEqual(7 * 10);
  });

  it('finds the latest state from the end of the file: an early line can be damaged without stopping a resume', async () => {
    const store = tempDir();
    const agent = new ScriptedAgent((_request, call) => `Step ${call + 1} done.\nSTATUS: ${call === 11 ? 'DONE' : 'CONTINUE'}`);
    const controller = new AbortController();
    const first = await runTask({
      task: 'Twelve steps',
      workdir: store,
      storeDir: store,
      agent,
      config: configSchema.parse({ task: { max_iterations: 20 } }),
      onEvent: (event) => event.type === 'state' && event.index === 10 && event.state === 'scoring' && queueMicrotask(() => controller.abort()),
      signal: controller.signal,
    });
    expect(first.status).toBe('interrupted');
    const journal = join(store, 'runs', first.runId, 'journal.jsonl');
    const lines = readFileSync(journal, 'utf8').split('\n');
    lines[2] = lines[2]!.slice(0, 20);
    writeFileSync(journal, lines.join('\n'));
    expect(() => RunStore.open(store).openRun(first.runId).readJournal()).toThrow(/journal\.jsonl: line 3 is not valid JSON/);
    const resumed = await resumeRun(first.runId, { storeDir: store, agent: new ScriptedAgent((_r, call) => `Step ${call + 11} done.\nSTATUS: ${call === 1 ? 'DONE' : 'CONTINUE'}`) });
    expect(resumed.status).toBe('done');
    expect(resumed.iterations.map((i) => i.index)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  });
});
