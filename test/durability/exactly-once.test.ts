import { appendFileSync, chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { describe, expect, it } from 'vitest';
import { continuationPrompt } from '../../src/engine/effects.js';
import { CLI, FAKE_CLAUDE, obra, sandbox } from '../helpers/cli.js';
import { gitOut, gitRepo } from '../queue/helpers.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * Nothing done twice: a worktree task killed at each step of saving an iteration — after the agent's answer is
 * durable, after the record, after the commit — ends, once resumed, with one commit per iteration, one prompt
 * per iteration in the session's conversation, one record each, and a replay that verifies. A call cut by the
 * kill is recovered from the session's transcript: its answer adopted when the CLI had finished, continued (not
 * asked again) when it had not.
 */

const REPLIES = JSON.stringify([
  { result: 'Added the first part.\nSTATUS: CONTINUE', files: { 'part-1.txt': 'one\n' } },
  { result: 'Finished the second part.\nSTATUS: DONE', files: { 'part-2.txt': 'two\n' } },
]);

function setup() {
  const box = sandbox();
  const log = join(box.dir, 'fake.log');
  const env = { ...box.env, PATH: process.env.PATH ?? '', OBRA_CLAUDE_BIN: FAKE_CLAUDE, FAKE_CLAUDE_REPLIES: REPLIES, FAKE_CLAUDE_REPLY_BY: 'turn', FAKE_CLAUDE_LOG: log };
  const answers = () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { outcome?: string }).filter((c) => c.outcome === 'answer').length : 0);
  /** Every prompt the session's conversation holds (its transcript's `user` entries), in order. */
  const prompts = () => {
    const projects = join(box.dir, '.claude', 'projects');
    const files = existsSync(projects) ? readdirSync(projects).flatMap((p) => readdirSync(join(projects, p)).filter((f) => f.endsWith('.jsonl')).map((f) => join(projects, p, f))) : [];
    expect(files).toHaveLength(1);
    return readFileSync(files[0]!, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; message: { content: string } }).filter((e) => e.type === 'user').map((e) => e.message.content);
  };
  return { ...box, env, log, answers, prompts };
}

/** A process group of its own: killing it kills git and a hook it waits for too, as a machine's death would. */
function detached(args: string[], cwd: string, env: Record<string, string>): ResultPromise {
  return execa('node', args, { cwd, env, extendEnv: false, reject: false, detached: true, timeout: 60_000 });
}

/** Waits for what a step of the test must see (a machine under load may take a while). */
const until = (condition: () => boolean, what: string) => waitFor(condition, { what, timeoutMs: 30_000 });

async function killGroup(child: ResultPromise): Promise<void> {
  process.kill(-child.pid!, 'SIGKILL');
  await child;
}

/** A git hook that, armed, stops the process that runs it (and so git, and Obra waiting for git) until killed. */
function freezingHook(repo: string, name: string, when: string, reached: string): void {
  const hook = join(repo, '.git', 'hooks', name);
  writeFileSync(hook, `#!/bin/sh\nif ${when}; then touch '${reached}'; sleep 600; fi\nexit 0\n`);
  chmodSync(hook, 0o755);
}

const TSX = import.meta.resolve('tsx');
const CRASH_AT_SAVE = join(import.meta.dirname, 'crash-at-save.ts');

type Window = 'after the answer, before the record' | 'after the record, before the commit' | 'after the commit';
const WINDOWS: Window[] = ['after the answer, before the record', 'after the record, before the commit', 'after the commit'];

describe('exactly once: a worktree task killed while it saves an iteration', () => {
  for (const window of WINDOWS) {
    it(`${window}: one commit, one prompt and one record per iteration once resumed`, { timeout: 90_000 }, async () => {
      const s = setup();
      const repo = await gitRepo(join(s.dir, 'repo'));
      const submitted = await obra(['submit', '--task', 'Write the two parts', '--json'], { cwd: repo, env: s.env });
      expect(submitted.exitCode, submitted.stderr).toBe(0);
      const runId = (JSON.parse(submitted.stdout) as { runId: string }).runId;
      const reached = join(s.dir, 'reached');
      let child: ResultPromise;
      if (window === 'after the answer, before the record') {
        child = detached(['--import', TSX, CRASH_AT_SAVE, runId, FAKE_CLAUDE], repo, s.env);
        let stderr = '';
        child.stderr!.on('data', (chunk: Buffer) => void (stderr += chunk));
        await until(() => stderr.includes('stalled before the record'), 'the run to stop before its record');
      } else {
        // Armed by the first iteration's changes (the worktree's own checkout changes the index too, without them).
        const staged = `git ls-files --error-unmatch part-1.txt >/dev/null 2>&1 && [ ! -e '${reached}' ]`;
        if (window === 'after the record, before the commit') freezingHook(repo, 'post-index-change', staged, reached);
        else freezingHook(repo, 'post-commit', `[ ! -e '${reached}' ]`, reached);
        child = detached([CLI, 'work', '--until-idle'], repo, s.env);
        await until(() => existsSync(reached), `the hook ${window}`);
      }
      const records = join(repo, '.obra', 'runs', runId, 'iterations.jsonl');
      const recordsAtKill = existsSync(records) ? readFileSync(records, 'utf8').split('\n').filter((l) => l.includes('"index"')).length : 0;
      await killGroup(child);
      expect(recordsAtKill).toBe(window === 'after the answer, before the record' ? 0 : 1);
      expect(s.answers()).toBe(1);

      const resumed = await obra(['work', '--until-idle'], { cwd: repo, env: s.env });
      expect(resumed.exitCode, resumed.stderr).toBe(0);
      expect(resumed.stderr).toContain(`[${runId}] done`);
      // One commit per iteration, each naming its own.
      expect((await gitOut(repo, 'log', '--format=%(trailers:key=Obra-Iteration,valueonly)', `main..obra/${runId}`)).split('\n').filter(Boolean)).toEqual([`${runId}/2`, `${runId}/1`]);
      expect(await gitOut(repo, 'show', '--name-only', '--format=', `obra/${runId}~1`)).toBe('part-1.txt');
      // One agent call and one prompt per iteration; one record each; the records match the journal.
      expect(s.answers()).toBe(2);
      const prompts = s.prompts();
      expect(prompts).toHaveLength(2);
      expect(new Set(prompts).size).toBe(2);
      expect(readFileSync(records, 'utf8').split('\n').filter((l) => l.includes('"index"'))).toHaveLength(2);
      const replay = await obra(['replay', runId], { cwd: repo, env: s.env });
      expect(replay.exitCode, replay.stderr).toBe(0);
    });
  }
});

describe('exactly once: an agent call cut by a kill', () => {
  /** `obra run` killed (with the CLI: its whole group) once the call's prompt is in the session's transcript. */
  async function cutRun() {
    const s = setup();
    const work = join(s.dir, 'work');
    await gitRepo(work);
    const env = { ...s.env, FAKE_CLAUDE_LATENCY_MS: '30000' };
    const child = detached([CLI, 'run', '--task', 'Write the two parts', '--json'], work, env);
    await until(() => {
      const projects = join(s.dir, '.claude', 'projects');
      return existsSync(projects) && readdirSync(projects).some((p) => readdirSync(join(projects, p)).some((f) => f.endsWith('.jsonl')));
    }, 'the prompt to reach the transcript');
    await killGroup(child);
    const runId = readdirSync(join(work, '.obra', 'runs'))[0]!;
    const projects = join(s.dir, '.claude', 'projects');
    const [project] = readdirSync(projects);
    const transcript = join(projects, project!, readdirSync(join(projects, project!)).find((f) => f.endsWith('.jsonl'))!);
    return { s, work, runId, transcript };
  }

  it('adopts the answer the CLI had finished (no second call) and says so in the record', { timeout: 60_000 }, async () => {
    const { s, work, runId, transcript } = await cutRun();
    expect(s.answers()).toBe(0);
    // The CLI finished the turn just as its caller died: the answer is in the session, the journal never heard it.
    appendFileSync(transcript, `${JSON.stringify({ type: 'assistant', message: { role: 'assistant', content: 'Did the whole task at once.\nSTATUS: DONE' } })}\n`);
    const resumed = await obra(['resume', runId, '--json'], { cwd: work, env: s.env });
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    const result = JSON.parse(resumed.stdout) as { status: string; iterations: { index: number; decision: string }[] };
    expect(result.status).toBe('done');
    expect(result.iterations.map((i) => [i.index, i.decision])).toEqual([[1, 'done']]);
    expect(s.answers()).toBe(0);
    expect(s.prompts()).toHaveLength(1);
    const record = JSON.parse(readFileSync(join(work, '.obra', 'runs', runId, 'iterations.jsonl'), 'utf8').split('\n')[0]!.replace(/\0+$/, '')) as { agent: { recovered: { how: string; note: string }; argv: string[] } };
    expect(record.agent.recovered.how).toBe('adopted');
    expect(record.agent.recovered.note).toMatch(/^the call cut by a crash had finished: its answer was found in session [0-9a-f-]{36}'s transcript and adopted instead of asking again \(its cost is not known\)$/);
    expect(record.agent.argv).toEqual([]);
    const shown = await obra(['show', runId], { cwd: work, env: s.env });
    expect(shown.stdout).toContain('answer adopted from the session after a crash');
    expect((await obra(['replay', runId], { cwd: work, env: s.env })).exitCode).toBe(0);
  });

  it('continues a turn cut mid-answer instead of giving the prompt a second time', { timeout: 60_000 }, async () => {
    const { s, work, runId } = await cutRun();
    const before = s.prompts();
    expect(before).toHaveLength(1);
    const resumed = await obra(['resume', runId, '--json'], { cwd: work, env: s.env });
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    // The conversation: the first prompt once, then the request to continue it (the fake's second turn: done).
    expect(s.prompts()).toEqual([before[0], continuationPrompt()]);
    expect((JSON.parse(resumed.stdout) as { status: string }).status).toBe('done');
    expect(s.answers()).toBe(1);
    const record = JSON.parse(readFileSync(join(work, '.obra', 'runs', runId, 'iterations.jsonl'), 'utf8').split('\n')[0]!.replace(/\0+$/, '')) as { agent: { recovered: { how: string } } };
    expect(record.agent.recovered.how).toBe('continued');
    const shown = await obra(['show', runId], { cwd: work, env: s.env });
    expect(shown.stdout).toContain('continued after a crash (the prompt was not given twice)');
    expect((await obra(['replay', runId], { cwd: work, env: s.env })).exitCode).toBe(0);
  });
});

describe('exactly once: an event from outside while an iteration is saved', () => {
  for (const event of ['pause', 'cancel'] as const) {
    it(`a ${event} that lands while the commit is made is replayed where it landed`, { timeout: 90_000 }, async () => {
      const s = setup();
      const repo = await gitRepo(join(s.dir, 'repo'));
      const submitted = await obra(['submit', '--task', 'Write the two parts', '--json'], { cwd: repo, env: s.env });
      const runId = (JSON.parse(submitted.stdout) as { runId: string }).runId;
      // `git add` of the first iteration's changes holds the save for a while: the event comes in meanwhile.
      const reached = join(s.dir, 'reached');
      const hook = join(repo, '.git', 'hooks', 'post-index-change');
      writeFileSync(hook, `#!/bin/sh\nif git ls-files --error-unmatch part-1.txt >/dev/null 2>&1 && [ ! -e '${reached}' ]; then touch '${reached}'; sleep 5; fi\nexit 0\n`);
      chmodSync(hook, 0o755);
      const worker = execa('node', [CLI, 'work', '--until-idle'], { cwd: repo, env: s.env, extendEnv: false, reject: false });
      await until(() => existsSync(reached), 'the save to start');
      const sent = await obra([event, runId], { cwd: repo, env: s.env });
      expect(sent.exitCode, sent.stderr).toBe(0);
      const worked = await worker;
      expect(worked.stderr).toContain(`[${runId}] ${event === 'pause' ? 'paused' : 'cancelled'}`);
      // The event is in the journal while iteration 1 was still persisting (its record written: files save it first).
      const lines = readFileSync(join(repo, '.obra', 'runs', runId, 'journal.jsonl'), 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { event: { type: string }; iteration: { index: number; state: string } | null });
      const at = lines.findIndex((l) => l.event.type === event.toUpperCase());
      expect(lines[at - 1]!.iteration).toEqual({ index: 1, state: 'persisting' });
      expect(readFileSync(join(repo, '.obra', 'runs', runId, 'iterations.jsonl'), 'utf8')).toContain('"index":1');
      const replay = await obra(['replay', runId], { cwd: repo, env: s.env });
      expect(replay.exitCode, replay.stderr).toBe(0);
      if (event === 'cancel') return;
      const resumed = await obra(['resume', runId, '--json'], { cwd: repo, env: s.env });
      expect((JSON.parse(resumed.stdout) as { status: string }).status).toBe('done');
      expect((await obra(['replay', runId], { cwd: repo, env: s.env })).exitCode).toBe(0);
    });
  }
});
