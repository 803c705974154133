import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import { configSchema } from '../../src/config/schema.js';
import { resumeRun, runTask } from '../../src/index.js';
import { Journal } from '../../src/store/journal.js';
import { RunStore } from '../../src/store/run-store.js';
import { tempDir } from '../durability/helpers.js';
// @ts-expect-error no type declarations for the fixture
import { startOllamaStub } from '../../fixtures/ollama-stub/server.mjs';
import { runChecks } from '../../src/scoring/checks.js';
import { recordingFs } from '../helpers/store-fs.js';
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
      // The real write() and fdatasync() calls on journal.jsonl, seen through the store's file-system seam.
      const ops: ('write' | 'sync' | 'agent')[] = [];
      const { fs } = recordingFs((op, path) => {
        if (path.endsWith('journal.jsonl') && (op === 'write' || op === 'sync')) ops.push(op);
        return null;
      });
      const agent = new ScriptedAgent((_request, call) => {
        ops.push('agent');
        return `Step ${call + 1}: changed module ${call}.\nSTATUS: CONTINUE`;
      });
      const store = tempDir();
      const commits: { lines: number; synced: boolean }[] = [];
      const result = await runTask({ task: 'Ten steps', workdir: store, storeDir: store, agent, config: configSchema.parse({ task: { max_iterations: 10 } }), durability, onJournalCommit: (stats) => commits.push(stats), fs });
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

  it('write-ahead before every effect that leaves the process: check commands and the LLM judge too', async () => {
    // Everything in one order: the journal's real write()/fdatasync() calls, each check run, each judge request.
    const ops: string[] = [];
    let written = '';
    let durable = '';
    /** The journal's text that was durable when each effect started. */
    const durableAt: { effect: string; durable: string }[] = [];
    const { fs } = recordingFs((op, path, text) => {
      if (!path.endsWith('journal.jsonl')) return null;
      if (op === 'write') written += text ?? '';
      if (op === 'sync') durable = written;
      if (op === 'write' || op === 'sync') ops.push(op);
      return null;
    });
    const effect = (name: string) => {
      ops.push(name);
      durableAt.push({ effect: name, durable });
    };
    const judge = (await startOllamaStub({ onRequest: (method: string, url: string) => method === 'POST' && url.startsWith('/api/chat') && effect('judge') })) as { url: string; close: () => Promise<void> };
    try {
      const store = tempDir();
      const agent = new ScriptedAgent((_request, call) => `Step ${call + 1}: changed module ${call} and checked it.\nSTATUS: CONTINUE`);
      const checks: typeof runChecks = (commands, options) => {
        effect('check');
        return runChecks(commands, options);
      };
      const config = configSchema.parse({ task: { max_iterations: 3, checks: ['true'] }, quality: { judge: { enabled: true, host: judge.url, model: 'stub-judge' } } });
      const result = await runTask({ task: 'Three steps', workdir: store, storeDir: store, agent, config, runChecks: checks, fs });
      expect(result.status).toBe('max_iterations');
      expect(ops.filter((op) => op === 'check')).toHaveLength(3);
      expect(ops.filter((op) => op === 'judge')).toHaveLength(3);
      // What led to each (the line entering its iteration's `scoring`) was written and made durable before it.
      for (const [i, { effect: name, durable: text }] of durableAt.entries()) {
        const iteration = Math.floor(i / 2) + 1;
        expect(text, `${name} of iteration ${iteration}`).toContain(`"iteration":{"index":${iteration},"state":"scoring"}`);
      }
      ops.forEach((op, i) => {
        if (op !== 'check' && op !== 'judge') return;
        const journal = ops.slice(0, i).filter((o) => o === 'write' || o === 'sync');
        expect(journal.slice(-2), `before ${op} #${i}`).toEqual(['write', 'sync']);
      });
    } finally {
      await judge.close();
    }
  });
});

describe('the latest state of a journal this process writes', () => {
  it('is what reading the file back gives, without reading it: after transitions, after a marker, across commits', async () => {
    const { store, result } = await longRun(3);
    const entries = RunStore.open(store).openRun(result.runId).readJournal();
    const path = join(tempDir(), 'journal.jsonl');
    const live = new Journal(path);
    const fromDisk = () => {
      const reader = new Journal(path);
      try {
        return reader.latest();
      } finally {
        reader.close();
      }
    };
    expect(live.latest()).toEqual({ entry: null, lastSeq: 0 });
    for (const [i, { seq: _seq, actor, ...step }] of entries.entries()) {
      live.add({ ...step, actor: actor as 'task' | 'iteration' }, { checkpoint: i === 0 });
      if (i % 3 === 2) {
        live.commit(false);
        expect(live.latest()).toEqual(fromDisk());
      }
    }
    live.marker(Date.now(), { type: 'obra.interrupted', reason: 'a test' } as never);
    // Queued, not written yet: what the file says still stands.
    expect(live.latest()).toEqual(fromDisk());
    live.commit(true);
    const latest = live.latest();
    expect(latest).toEqual(fromDisk());
    expect(latest.lastSeq).toBe(entries.length + 1);
    expect(latest.entry!.seq).toBe(entries.length);
    live.close();
  });
});
