import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { submitTask } from '../../src/queue/submit.js';
import { RunStore } from '../../src/store/run-store.js';
import { RunStatusCache } from '../../src/store/status-cache.js';
import { tempDir } from '../durability/helpers.js';

/** A store with one queued task (a plain folder of its own), and a cache that counts the run files it reads. */
async function queuedRun(options: { now?: () => number } = {}) {
  const root = tempDir();
  const folder = join(root, 'work');
  mkdirSync(folder);
  const storeDir = join(root, 'store');
  const { runId } = await submitTask({ task: 'Add input validation', repo: folder, storeDir });
  const store = RunStore.open(storeDir);
  const reads = vi.spyOn(store, 'peekStatus');
  return { store, runId, reads, cache: new RunStatusCache(store, options) };
}

/** A clock a minute ahead: every file looks settled (the cache keeps only files unchanged for a second). */
const aMinuteLater = () => Date.now() + 60_000;

describe('RunStatusCache: a worker reads a run file again only when it changed', () => {
  it('reads a settled run file once, and again after every rewrite of it', async () => {
    const { store, runId, reads, cache } = await queuedRun({ now: aMinuteLater });
    const first = cache.peek(runId);
    expect(first.status).toBe('queued');
    expect(first.file?.task.text).toBe('Add input validation');
    expect(cache.peek(runId)).toBe(first);
    expect(cache.peek(runId)).toBe(first);
    expect(reads).toHaveBeenCalledTimes(1);

    // Another process pauses it: run.json is replaced (a new file), and the next look sees it.
    const handle = store.openRun(runId);
    handle.update({ status: 'paused', reason: 'paused by a person' });
    handle.close();
    const paused = cache.peek(runId);
    expect(paused).toEqual({ status: 'paused', updatedAt: store.openRun(runId).file.updatedAt, file: null, raceId: null });
    expect(reads).toHaveBeenCalledTimes(2);
    expect(cache.peek(runId)).toBe(paused);
    expect(reads).toHaveBeenCalledTimes(2);
  });

  it('reads again, at every look, a file changed within the last second (a second change could share its timestamp)', async () => {
    const { runId, reads, cache } = await queuedRun();
    for (let i = 0; i < 3; i++) expect(cache.peek(runId).status).toBe('queued');
    expect(reads).toHaveBeenCalledTimes(3);
    expect(cache.size).toBe(0);
  });

  it('never keeps a run whose file says running: its status depends on whether the process in its lock lives', async () => {
    const { store, runId, reads, cache } = await queuedRun({ now: aMinuteLater });
    const handle = store.openRun(runId);
    handle.update({ status: 'running' });
    handle.close();
    // Nobody holds its lock: it was interrupted (a worker may resume it), and it is looked at again each time.
    expect(cache.peek(runId)).toMatchObject({ status: 'interrupted' });
    expect(cache.peek(runId).file?.runId).toBe(runId);
    expect(reads).toHaveBeenCalledTimes(2);
    expect(cache.size).toBe(0);
  });

  it("says a run is gone in the store's words once its folder is deleted, and forgets it", async () => {
    const { store, runId, cache } = await queuedRun({ now: aMinuteLater });
    const folder = join(store.dir, '..', 'other');
    mkdirSync(folder);
    const { runId: other } = await submitTask({ task: 'Document the API', repo: folder, storeDir: store.dir });
    cache.peek(runId);
    expect(cache.size).toBe(1);
    rmSync(store.runDir(runId), { recursive: true });
    expect(() => cache.peek(runId)).toThrow(`no run "${runId}"`);
    expect(cache.size).toBe(0);
    // A run deleted between looks is let go when the store is listed.
    cache.peek(other);
    expect(cache.size).toBe(1);
    rmSync(store.runDir(other), { recursive: true });
    cache.keepOnly(store.listRunIds());
    expect(cache.size).toBe(0);
  });
});
