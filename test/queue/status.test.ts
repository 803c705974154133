import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { CLI, FAKE_CLAUDE, obra, sandbox } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait-for.js';
import { mkdirSync } from 'node:fs';

/** `obra status`: one line per task, as a table, as JSON, and live with --watch (plain lines when piped). */
describe('obra status', () => {
  it('shows each task once as a table and as JSON, and follows them with --watch as plain lines', async () => {
    const box = sandbox();
    const env = { ...box.env, OBRA_CLAUDE_BIN: FAKE_CLAUDE, FAKE_CLAUDE_LATENCY_MS: '1200' };
    const at = { cwd: box.dir, env };
    const ids: string[] = [];
    for (const name of ['one', 'two']) {
      mkdirSync(join(box.dir, name));
      ids.push((await obra(['submit', '--task', `Task ${name}`, '--repo', name, '--db', 'store', ...(name === 'two' ? ['--priority', '2'] : [])], at)).stdout.trim());
    }
    const empty = await obra(['status', '--db', join(box.dir, 'nothing-here')], at);
    expect(empty.stderr).toMatch(/^obra: /);

    const table = (await obra(['status', '--db', 'store'], at)).stdout.split('\n');
    expect(table[0]).toMatch(/^RUN +STATUS +AGENT +STATE +ITER +DECISION +COST +TOKENS +AGE +WAITING FOR +TASK$/);
    expect(table).toHaveLength(3);
    for (const id of ids) expect(table.find((l) => l.startsWith(id))).toMatch(/ queued +claude +queued +0 +- +\$0\.0000 +0 in \(0 cached\) \/ 0 out +\d+s +a worker \(`obra work`\) +Task (one|two)$/);

    const json = JSON.parse((await obra(['status', '--db', 'store', '--json'], at)).stdout) as { runId: string; column: string; priority: number }[];
    expect(json.map((l) => [l.runId, l.column, l.priority]).sort()).toEqual([[ids[0], 'queued', 0], [ids[1], 'queued', 2]].sort());

    const watch = execa('node', [CLI, 'status', '--watch', '--db', 'store'], { cwd: box.dir, env, reject: false });
    let printed = '';
    watch.stdout!.on('data', (chunk: Buffer) => (printed += chunk.toString()));
    const shows = (id: string, status: string) => new RegExp(`^\\d\\d:\\d\\d:\\d\\d ${id} +${status} `, 'm').test(printed);
    await waitFor(() => ids.every((id) => shows(id, 'queued')), { what: 'the watch to print both tasks queued' });
    const worked = await obra(['work', '--db', 'store', '--until-idle', '--concurrency', '1'], at);
    expect(worked.exitCode, worked.stderr).toBe(0);
    await waitFor(() => ids.every((id) => shows(id, 'done')), { what: 'the watch to print both tasks done' });
    watch.kill('SIGINT');
    const watched = await watch;
    expect(watched.exitCode).toBe(0);
    const lines = watched.stdout.split('\n');
    // Plain lines, each a change: a time, then the task's line. No screen control codes in a pipe.
    expect(watched.stdout).not.toContain('\x1b[');
    for (const id of ids) {
      const mine = lines.filter((l) => l.includes(` ${id} `)).map((l) => /^\d\d:\d\d:\d\d \S+ +(\S+)/.exec(l)![1]);
      expect(mine[0]).toBe('queued');
      expect(mine).toContain('running');
      expect(mine.at(-1)).toBe('done');
      // Only changes are printed: never the same status twice in a row unless something else changed.
      expect(mine.length).toBeLessThan(12);
    }
  }, 60_000);
});

describe('obra status --watch in a terminal', () => {
  it('redraws the whole table in place', async () => {
    const { showStatus } = await import('../../src/cli/status.js');
    const { submitTask } = await import('../../src/index.js');
    const box = sandbox();
    mkdirSync(join(box.dir, 'a'));
    const { runId } = await submitTask({ task: 'Watch me', repo: join(box.dir, 'a'), storeDir: join(box.dir, 'store') });
    const writes: string[] = [];
    const tty = { isTTY: true, write: (text: string) => writes.push(text) } as unknown as NodeJS.WriteStream;
    const stop = new AbortController();
    const watching = showStatus({ db: join(box.dir, 'store'), watch: true, intervalMs: 20, signal: stop.signal }, tty);
    await waitFor(() => writes.length >= 3, { what: 'three redraws' });
    stop.abort();
    await watching;
    expect(writes.length).toBeGreaterThanOrEqual(3);
    for (const screen of writes) {
      // Home, clear, a clock line, then the table with the task.
      expect(screen).toMatch(/^\x1b\[H\x1b\[2J\d\d:\d\d:\d\d UTC — obra status \(Ctrl-C to stop\)\n\nRUN /);
      expect(screen).toContain(`${runId}  queued`);
    }
  });
});

describe('TaskLineReader: --watch and the board read again only what changed', () => {
  it('gives the lines taskLines gives; a later look opens no run; a change, and the run a task follows, show at once', async () => {
    const { submitTasks, taskLines, TaskLineReader, RunStore } = await import('../../src/index.js');
    const { vi } = await import('vitest');
    const box = sandbox();
    const storeDir = join(box.dir, 'store');
    const folder = (name: string) => {
      mkdirSync(join(box.dir, name));
      return join(box.dir, name);
    };
    const [first, follower, paused] = await submitTasks(
      [{ task: 'First', repo: folder('a') }, { task: 'Follower', repo: folder('b'), after: '@1' }, { task: 'Paused', repo: folder('c') }],
      { storeDir },
    );
    const update = (runId: string, patch: Record<string, unknown>) => {
      const handle = RunStore.open(storeDir).openRun(runId!);
      handle.update(patch);
      handle.close();
    };
    update(paused!, { status: 'paused', reason: 'held' });
    // A clock a minute ahead: every file looks settled (files changed within the last second are read every look).
    const reader = new TaskLineReader(storeDir, { now: () => Date.now() + 60_000 });
    const now = Date.now();
    expect(reader.lines(now)).toEqual(taskLines(storeDir, now));
    const opened = vi.spyOn(RunStore.prototype, 'openRun');
    try {
      const again = reader.lines(now + 5000);
      expect(opened).not.toHaveBeenCalled();
      const byId = new Map(again.map((l) => [l.runId, l]));
      expect(byId.get(follower!)).toMatchObject({ status: 'queued', waitingFor: `run ${first} (queued) to be done`, ageMs: expect.any(Number) });
      expect(byId.get(first!)!.ageMs).toBeGreaterThanOrEqual(5000);
      // The followed run is done: the follower's own files did not change, its line does.
      update(first!, { status: 'done', reason: 'all done' });
      opened.mockClear();
      const later = new Map(reader.lines().map((l) => [l.runId, l]));
      expect(later.get(first!)).toMatchObject({ status: 'done', column: 'done', reason: 'all done' });
      expect(later.get(follower!)!.waitingFor).toBe('a worker (`obra work`)');
      expect(opened.mock.calls.map(([runId]) => runId)).toEqual([first]);
      expect(later.get(paused!)).toMatchObject({ status: 'paused', waitingFor: '`obra resume`' });
    } finally {
      opened.mockRestore();
    }
  });
});
