import { tmpdir } from 'node:os';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { listRuns } from '../../src/cli/runs.js';
import { configSchema } from '../../src/config/schema.js';
import { resumeRun, runTask } from '../../src/index.js';
import type { StoreFs } from '../../src/store/durable-file.js';
import { RunStore, STORE_VERSION } from '../../src/store/run-store.js';
import { FilesRun } from '../../src/hosts/files/files-run.js';
import { fsError, recordingFs, replacementsOf, type FsOp } from '../helpers/store-fs.js';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import { deterministicAgent, outcomeOf, tempDir } from '../durability/helpers.js';

const config = configSchema.parse({ agent: { local: { retry_initial_delay: 0.02 } } });
const run = (store: string, options: { fs?: StoreFs; task?: string } = {}) =>
  runTask({ task: options.task ?? 'Build the parser', workdir: tmpdir(), storeDir: store, agent: deterministicAgent(), config, fs: options.fs });


describe('the store on disk', () => {
  it('has a versioned layout: a marker file, and per run a small run.json plus three append-only logs (journal, iterations, live events)', async () => {
    const store = tempDir();
    const result = await run(store);
    expect(JSON.parse(readFileSync(join(store, 'obra-store.json'), 'utf8'))).toEqual({ format: 'obra-store', version: STORE_VERSION });
    const runDir = join(store, 'runs', result.runId);
    expect(readdirSync(runDir).sort()).toEqual(['events.jsonl', 'iterations.jsonl', 'journal.jsonl', 'run.json']);
    const runFile = JSON.parse(readFileSync(join(runDir, 'run.json'), 'utf8'));
    expect(runFile).toMatchObject({ version: STORE_VERSION, runId: result.runId, status: 'done', iterations: 3, question: null });
    // The task machine's input is kept: replay starts from it.
    expect(runFile.input).toMatchObject({ runId: result.runId, task: { text: 'Build the parser' } });
    // Temp files of atomic writes never stay behind.
    expect(readdirSync(runDir).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });

  it('names the file and leaves it alone when a run.json is truncated, edited or foreign; other runs stay listed', async () => {
    const store = tempDir();
    const good = await run(store, { task: 'A good run' });
    const bad = await run(store, { task: 'A damaged run' });
    const runJson = join(store, 'runs', bad.runId, 'run.json');
    const original = readFileSync(runJson, 'utf8');

    for (const [content, message] of [
      [original.slice(0, original.length / 2), /run\.json is not valid JSON \(truncated or edited by hand\?\)/],
      ['', /run\.json is empty/],
      ['{"hello": "world"}', /run\.json is not an Obra file of the expected format \(version: /],
      [JSON.stringify({ ...JSON.parse(original), status: 'exploded' }), /run\.json is not an Obra file of the expected format \(status: /],
      [JSON.stringify({ ...JSON.parse(original), version: 1 }), /run\.json: written by an older Obra \(run file version 1; this Obra reads versions 2 and 3\)/],
      [JSON.stringify({ ...JSON.parse(original), version: 9 }), /run\.json: written by a newer Obra \(run file version 9.*upgrade Obra/],
    ] as const) {
      writeFileSync(runJson, content);
      const runs = listRuns(store);
      expect(runs.find((r) => r.runId === good.runId)).toMatchObject({ status: 'done', iterations: 3, task: 'A good run' });
      const listed = runs.find((r) => r.runId === bad.runId)!;
      expect(listed.status).toBe('unreadable');
      expect(listed.error).toContain(runJson);
      expect(listed.error).toMatch(message);
      await expect(resumeRun(bad.runId, { storeDir: store })).rejects.toThrow(message);
      expect(readFileSync(runJson, 'utf8')).toBe(content);
    }
  });

  it('refuses a store of another version, a foreign marker file and a folder that is not a store', () => {
    const older = tempDir();
    writeFileSync(join(older, 'obra-store.json'), JSON.stringify({ format: 'obra-store', version: 1 }));
    expect(() => RunStore.open(older)).toThrow(/obra-store\.json: written by an older Obra \(store format version 1; this Obra reads versions 2 and 3\)/);
    expect(() => listRuns(older)).toThrow(/older Obra/);
    expect(JSON.parse(readFileSync(join(older, 'obra-store.json'), 'utf8')).version).toBe(1);

    const newer = tempDir();
    writeFileSync(join(newer, 'obra-store.json'), JSON.stringify({ format: 'obra-store', version: 4 }));
    expect(() => RunStore.open(newer)).toThrow(/written by a newer Obra \(store format version 4.*upgrade Obra/);

    const foreign = tempDir();
    writeFileSync(join(foreign, 'obra-store.json'), '{"name": "some other tool"}');
    expect(() => RunStore.open(foreign)).toThrow(/obra-store\.json is not an Obra file of the expected format/);

    const project = tempDir();
    writeFileSync(join(project, 'package.json'), '{}');
    expect(() => RunStore.open(project)).toThrow(/is not an Obra store \(it holds other files and no obra-store\.json\)/);
    expect(readdirSync(project)).toEqual(['package.json']);
  });

  it('an unknown run id or an unsafe one is a clear error', async () => {
    const store = tempDir();
    await run(store);
    await expect(resumeRun('20200101-000000-abcdef', { storeDir: store })).rejects.toThrow(/no run "20200101-000000-abcdef" in .* `obra runs` lists the runs there/);
    await expect(resumeRun('../../etc', { storeDir: store })).rejects.toThrow(/is not a valid run id/);
    await expect(resumeRun('x', { storeDir: tempDir() })).rejects.toThrow(/no Obra store at/);
  });

  it('a read-only store: the write fails with the file named and nothing half-written', async () => {
    const store = tempDir();
    await run(store);
    const readOnly = recordingFs((op, path) => (op === 'open' && path.includes('run.json') ? fsError('EROFS') : null));
    await expect(run(store, { fs: readOnly.fs })).rejects.toThrow(/cannot write .*run\.json: the file system is read-only — point --db at a writable folder/);
    const denied = recordingFs((op) => (op === 'open' ? fsError('EACCES') : null));
    const fresh = join(tempDir(), 'store');
    await expect(run(fresh, { fs: denied.fs })).rejects.toThrow(/cannot write .*obra-store\.json: permission denied/);
  });

  it('a full disk mid-run stops the run at its last saved state; once there is space, resume finishes it', async () => {
    const reference = await run(tempDir());
    const store = tempDir();
    let journalWrites = 0;
    const full = recordingFs((op, path) => (op === 'write' && path.endsWith('journal.jsonl') && ++journalWrites === 9 ? fsError('ENOSPC') : null));
    const stopped = run(store, { fs: full.fs });
    await expect(stopped).rejects.toThrow(/cannot append to .*journal\.jsonl: the disk is full .*stopped at its last saved state — `obra resume .*` continues it/);
    const [listed] = listRuns(store);
    expect(listed!.status).toBe('interrupted');
    const handle = RunStore.open(store).openRun(listed!.runId);
    const saved = handle.readJournal();
    expect(saved.length).toBeGreaterThan(5);
    const resumed = await resumeRun(listed!.runId, { storeDir: store, agent: deterministicAgent(), config });
    expect(outcomeOf(resumed)).toEqual(outcomeOf(reference));
  });

  /** A run whose store fails once as `failure` says; then resumed on a healthy disk: it must end as an uninterrupted one. */
  async function failsThenResumes(failure: (op: FsOp, path: string) => NodeJS.ErrnoException | null, message: RegExp) {
    const reference = await run(tempDir());
    const store = tempDir();
    await expect(run(store, { fs: recordingFs(failure).fs })).rejects.toThrow(message);
    const [listed] = listRuns(store);
    expect(listed!.status).toBe('interrupted');
    const resumed = await resumeRun(listed!.runId, { storeDir: store, agent: deterministicAgent(), config });
    expect(outcomeOf(resumed)).toEqual(outcomeOf(reference));
    expect(RunStore.open(store).openRun(listed!.runId).readIterations().map((r) => r.index)).toEqual([1, 2, 3]);
  }

  it('a failed write of iterations.jsonl stops the run resumable, and the record is not lost', async () => {
    let writes = 0;
    await failsThenResumes(
      (op, path) => (op === 'write' && path.endsWith('iterations.jsonl') && ++writes === 2 ? fsError('EIO') : null),
      /cannot append to .*iterations\.jsonl: EIO: .*stopped at its last saved state — `obra resume .*` continues it/,
    );
  });

  it('a failed fdatasync of the journal stops the run before anything follows from the unsynced lines', async () => {
    let syncs = 0;
    await failsThenResumes(
      (op, path) => (op === 'sync' && path.endsWith('journal.jsonl') && ++syncs === 3 ? fsError('EIO') : null),
      /cannot sync .*journal\.jsonl: EIO: .*stopped at its last saved state/,
    );
  });

  it('a failed rename of run.json when the run ends: an error that names it; the run stays resumable and ends the same', async () => {
    let renames = 0;
    // run.json is written when the run is created, when it starts running, and when it ends: the third fails.
    await failsThenResumes(
      (op, path) => (op === 'rename' && path.endsWith('run.json') && ++renames === 3 ? fsError('EROFS') : null),
      /cannot write .*run\.json: the file system is read-only — point --db at a writable folder; run .* stopped at its last saved state/,
    );
  });

  it('run.json and limits.json are replaced durably: data fdatasynced before the rename, the folder fsynced after', async () => {
    const store = tempDir();
    const recording = recordingFs();
    // A 429 first, so the account's limits.json is written (the wait) and written again (cleared by the answer).
    const agent = new ScriptedAgent((request) =>
      request.index === 1 && request.attempt === 1
        ? { outcome: { kind: 'rateLimited', status: 429, message: 'API Error: Request rejected (429) · rate_limit_error' } }
        : `Iteration ${request.index}: done.\nSTATUS: DONE`,
    );
    const rateConfig = configSchema.parse({ agent: { local: { retry_initial_delay: 0.02, rate_limit_initial_delay: 0.02 } } });
    const result = await runTask({ task: 'Build the parser', workdir: tmpdir(), storeDir: store, agent, config: rateConfig, fs: recording.fs });
    expect(result.status).toBe('done');
    const durable = ['write temp', 'sync temp', 'rename', 'fsync folder'];
    // Created, started, ended (the first through the async writer, the others through the sync one).
    const runJson = replacementsOf(recording.ops, join(store, 'runs', result.runId, 'run.json'));
    expect(runJson.length).toBeGreaterThanOrEqual(3);
    runJson.forEach((steps) => expect(steps).toEqual(durable));
    expect(replacementsOf(recording.ops, join(store, 'limits.json'))).toEqual([durable, durable]);
  });

  it('a torn last journal line (a crash mid-write) is ignored, and cut off before the run goes on', async () => {
    const reference = await run(tempDir());
    const store = tempDir();
    const interrupted = await runTask({ task: 'Build the parser', workdir: store, storeDir: store, agent: deterministicAgent({ iterations: 3 }), config, signal: AbortSignal.abort() });
    expect(interrupted.status).toBe('interrupted');
    const journal = join(store, 'runs', interrupted.runId, 'journal.jsonl');
    appendFileSync(journal, '{"seq":99,"k":"p","at":1,"actor":"iter');
    const resumed = await resumeRun(interrupted.runId, { storeDir: store, agent: deterministicAgent(), config });
    expect(outcomeOf(resumed)).toEqual(outcomeOf(reference));
    const lines = readFileSync(journal, 'utf8').split('\n');
    expect(lines.at(-1)).toBe('');
    expect(lines.filter((l) => l.includes('"seq":99'))).toEqual([]);
  });

  it('a hand-edited line inside the journal is named; listing still works', async () => {
    const store = tempDir();
    const result = await runTask({ task: 'Build', workdir: store, storeDir: store, agent: deterministicAgent(), config, signal: AbortSignal.abort() });
    const journal = join(store, 'runs', result.runId, 'journal.jsonl');
    const lines = readFileSync(journal, 'utf8').split('\n');
    lines[1] = lines[1]!.replace('"seq":2', '"seq":"two"');
    writeFileSync(journal, lines.join('\n'));
    const before = readFileSync(journal, 'utf8');
    expect(() => RunStore.open(store).openRun(result.runId).readJournal()).toThrow(/journal\.jsonl: line 2 is not a journal entry \(seq: .*\); the file was left untouched/);
    expect(listRuns(store)[0]).toMatchObject({ runId: result.runId, status: 'interrupted' });
    expect(readFileSync(journal, 'utf8')).toBe(before);
    mkdirSync(join(store, 'runs', 'not-a-run'));
    expect(listRuns(store).map((r) => r.status).sort()).toEqual(['interrupted', 'unreadable']);
  });
});

describe("a run's lock, taken off the event loop", () => {
  it('one drive of a run at a time in this process; a live process elsewhere keeps it; a released run can be taken again', async () => {
    const store = tempDir();
    const { runId } = await run(store);
    const runs = RunStore.open(store);
    const [a, b] = [runs.openRun(runId), runs.openRun(runId)];
    const outcomes = await Promise.allSettled([a.acquireLockInBackground(), b.acquireLockInBackground()]);
    expect(outcomes.map((o) => o.status).sort()).toEqual(['fulfilled', 'rejected']);
    const refused = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
    expect(refused.reason).toMatchObject({ exitCode: 3, message: `run ${runId} is already being driven by this process` });
    const winner = outcomes[0]!.status === 'fulfilled' ? a : b;
    expect(winner.lockHolder()).toBe(process.pid);
    await winner.releaseLockInBackground();
    expect(readdirSync(join(store, 'runs', runId)).filter((name) => name.startsWith('lock'))).toEqual([]);

    // Another live process's lock (this test's parent): refused, naming it; the lock is left as it was.
    const lock = join(store, 'runs', runId, 'lock');
    writeFileSync(lock, JSON.stringify({ pid: process.ppid, start: null, host: hostname(), since: '2026-11-28T00:00:00.000Z' }));
    await expect(b.acquireLockInBackground()).rejects.toMatchObject({ exitCode: 3, message: expect.stringContaining(`is being driven by process ${process.ppid}`) });
    expect(JSON.parse(readFileSync(lock, 'utf8')).pid).toBe(process.ppid);
    rmSync(lock);
    await b.acquireLockInBackground();
    expect(b.lockHolder()).toBe(process.pid);
    await b.releaseLockInBackground();
  });

  it("a drive refused because another drive of this process holds the run leaves that drive's lock alone", async () => {
    const store = tempDir();
    const { runId } = await run(store);
    const runs = RunStore.open(store);
    const holder = runs.openRun(runId);
    await holder.acquireLockInBackground();
    // A second worker of this process tries the run: refused, and what it lets go of is only its own.
    const refused = new FilesRun(runs.openRun(runId), store);
    await expect(refused.begin()).rejects.toMatchObject({ exitCode: 3 });
    expect(holder.lockHolder()).toBe(process.pid);
    expect(existsSync(join(store, 'runs', runId, 'lock'))).toBe(true);
    // The run still reads as held: nobody may resume it as interrupted.
    await expect(runs.openRun(runId).acquireLockInBackground()).rejects.toMatchObject({ exitCode: 3 });
    await holder.releaseLockInBackground();
    expect(existsSync(join(store, 'runs', runId, 'lock'))).toBe(false);
  });
});
