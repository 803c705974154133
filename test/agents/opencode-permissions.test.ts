import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { obra, ROOT, sandbox } from '../helpers/cli.js';

/**
 * Obra's promise for opencode, driven as a user drives it (`obra run --agent opencode`, `obra answer --allow`), with
 * fixtures/fake-opencode deciding permissions the way the real CLI does (test/contract/opencode-contract.test.ts
 * holds it to the real binary): the agent edits inside the task's folder and runs the task's checks; any other
 * command is refused, recorded and put to a human, whose grant reaches opencode as an allow rule.
 */

const FAKE_OPENCODE = join(ROOT, 'fixtures/fake-opencode');
const readJsonLines = (path: string) => readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const runIdIn = (dir: string) => readdirSync(join(dir, '.obra', 'runs'))[0]!;
const envWith = (box: ReturnType<typeof sandbox>, replies: unknown[]) => ({ ...box.env, FAKE_OPENCODE_REPLIES: JSON.stringify(replies), FAKE_OPENCODE_LOG: join(box.dir, 'fake.log') });
type Logged = { argv: string[]; permission: string; outcome: string };

describe('opencode under Obra\'s permissions', () => {
  it('edits inside the folder and runs the task\'s check: done in one iteration; opencode got exactly those rules', async () => {
    const box = sandbox();
    const env = envWith(box, [{ files: { 'notes.txt': 'hello' }, shell: ['test -f notes.txt'], text: 'Wrote notes.txt and checked it.\nSTATUS: DONE' }]);
    const run = await obra(['run', '--agent', 'opencode', '--agent-bin', FAKE_OPENCODE, '--task', 'Write notes.txt', '--check', 'test -f notes.txt', '--json'], { cwd: box.dir, env });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ status: 'done', iterations: [{ decision: 'done', permissionDenials: [] }] });
    expect(readFileSync(join(box.dir, 'notes.txt'), 'utf8')).toBe('hello\n');
    const [call] = readJsonLines(join(box.dir, 'fake.log')) as Logged[];
    expect(JSON.parse(call!.permission)).toMatchObject({ edit: 'allow', bash: { '*': 'deny', 'test -f notes.txt': 'allow' }, external_directory: { '*': 'deny' }, webfetch: 'deny', websearch: 'deny' });
  });

  it('a refused command escalates with the rule to grant; `obra answer --allow` grants it and the same session goes on', async () => {
    const box = sandbox();
    const env = envWith(box, [
      { shell: ['touch ran.txt'], text: 'I need to run touch.\nSTATUS: CONTINUE' },
      { shell: ['touch ran.txt'], text: 'Ran it.\nSTATUS: DONE' },
    ]);
    const first = await obra(['run', '--agent', 'opencode', '--agent-bin', FAKE_OPENCODE, '--task', 'Make ran.txt', '--check', 'test -f ran.txt'], { cwd: box.dir, env });
    expect(first.exitCode, first.stderr).toBe(3);
    const runId = runIdIn(box.dir);
    expect(first.stderr).toContain(`the agent was refused 1 tool use it asked for: bash touch ran.txt — allow it with \`obra answer ${runId} --allow 'Bash(touch ran.txt)'\``);
    expect(existsSync(join(box.dir, 'ran.txt'))).toBe(false);

    const answered = await obra(['answer', runId, '--allow', 'Bash(touch ran.txt)', '--json'], { cwd: box.dir, env });
    expect(answered.exitCode, answered.stderr).toBe(0);
    expect(JSON.parse(answered.stdout)).toMatchObject({ status: 'done', granted: ['Bash(touch ran.txt)'] });
    expect(existsSync(join(box.dir, 'ran.txt'))).toBe(true);
    const calls = readJsonLines(join(box.dir, 'fake.log')) as (Logged & { sessionID: string })[];
    expect(calls).toHaveLength(2);
    // The granted command reached opencode as an allow rule, on the session the first call started.
    expect(calls[1]!.argv).toEqual(expect.arrayContaining(['-s', calls[0]!.sessionID]));
    expect(JSON.parse(calls[1]!.permission).bash).toEqual({ '*': 'deny', 'test -f ran.txt': 'allow', 'touch ran.txt': 'allow' });
  });
});
