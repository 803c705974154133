import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FAKE_CLAUDE, obra, sandbox } from '../helpers/cli.js';

/**
 * Permissions in headless mode, driven as a user drives them (the CLI, a config file, `obra answer --allow`),
 * with fixtures/fake-claude deciding permissions the way the real CLI does (test/contract checks it against the
 * real binary): by default the agent may edit inside the task's working directory and run the task's own checks;
 * anything else it is refused is recorded, shown, and put to a human, whose grant lasts for the rest of the run.
 */

const readJsonLines = (path: string) => readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const runIdIn = (dir: string) => readdirSync(join(dir, '.obra', 'runs'))[0]!;
const fakeCalls = (dir: string) => (existsSync(join(dir, 'fake.log')) ? readJsonLines(join(dir, 'fake.log')) : []);
const envWith = (box: ReturnType<typeof sandbox>, replies: unknown[], extra: Record<string, string> = {}) => ({
  ...box.env,
  FAKE_CLAUDE_REPLIES: JSON.stringify(replies),
  FAKE_CLAUDE_LOG: join(box.dir, 'fake.log'),
  ...extra,
});

const COMMAND = `node -e "require('fs').writeFileSync('ran.txt', 'ok')"`;
const RULE = `Bash(${COMMAND})`;
/** The rule as Obra prints it for a shell (in single quotes; a single quote inside as '\''). */
const QUOTED = `'${RULE.replaceAll("'", `'\\''`)}'`;

describe('permissions in headless mode', () => {
  it('by default the agent edits inside the working directory and runs the task\'s checks: done in one iteration', async () => {
    const box = sandbox();
    const replies = [{ files: { 'notes.txt': 'hello\n' }, bash: ['test -f notes.txt'], result: 'Wrote notes.txt and ran the check; it passes.\nSTATUS: DONE' }];
    const run = await obra(['run', '--task', 'Write notes.txt', '--check', 'test -f notes.txt', '--agent-bin', FAKE_CLAUDE, '--json'], { cwd: box.dir, env: envWith(box, replies) });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ status: 'done', iterations: [{ decision: 'done', permissionDenials: [] }] });
    expect(readFileSync(join(box.dir, 'notes.txt'), 'utf8')).toBe('hello\n');
    const argv: string[] = fakeCalls(box.dir)[0].argv;
    expect(argv.slice(argv.indexOf('--permission-mode'), argv.indexOf('--permission-mode') + 2)).toEqual(['--permission-mode', 'acceptEdits']);
    expect(argv.slice(argv.indexOf('--allowedTools'), argv.indexOf('--allowedTools') + 2)).toEqual(['--allowedTools', 'Bash(test -f notes.txt)']);
  });

  it('a refused command escalates with the denial as the question; `obra answer --allow` grants it for the run and the same session goes on', async () => {
    const box = sandbox();
    const replies = [
      { bash: [COMMAND], result: 'I need to run a node script to write ran.txt.\nSTATUS: CONTINUE' },
      { bash: [COMMAND], result: 'Ran the script; ran.txt is written.\nSTATUS: DONE' },
    ];
    const env = envWith(box, replies);
    const first = await obra(['run', '--task', 'Write ran.txt with a node script', '--agent-bin', FAKE_CLAUDE], { cwd: box.dir, env });
    expect(first.exitCode, first.stderr).toBe(3);
    const runId = runIdIn(box.dir);
    expect(first.stderr).toContain(`DENIED the agent was refused Bash: ${COMMAND} (allow with --allow ${QUOTED})`);
    expect(first.stderr).toContain(`The run needs a human: the agent was refused 1 tool use it asked for: Bash: ${COMMAND} — allow it with \`obra answer ${runId} --allow ${QUOTED}\``);
    expect(existsSync(join(box.dir, 'ran.txt'))).toBe(false);
    const [record] = readJsonLines(join(box.dir, '.obra', 'runs', runId, 'iterations.jsonl'));
    expect(record).toMatchObject({ decision: 'escalate', decisionRule: 'permissionDenied', permissionDenials: [{ tool: 'Bash', input: COMMAND, rule: RULE }] });

    const answered = await obra(['answer', runId, '--allow', RULE, '--json'], { cwd: box.dir, env });
    expect(answered.exitCode, answered.stderr).toBe(0);
    expect(JSON.parse(answered.stdout)).toMatchObject({ status: 'done', granted: [RULE] });
    expect(readFileSync(join(box.dir, 'ran.txt'), 'utf8')).toBe('ok');
    const calls = fakeCalls(box.dir);
    const session = calls[0].argv[calls[0].argv.indexOf('--session-id') + 1];
    // The same conversation, now with the rule.
    expect(calls[1].argv).toEqual(expect.arrayContaining(['--resume', session, '--allowedTools', RULE]));
    expect(calls[1].argv).not.toContain('--session-id');
    const second = readJsonLines(join(box.dir, '.obra', 'runs', runId, 'iterations.jsonl'))[1];
    expect(second.prompt).toContain(`You may now use: ${RULE} (granted for the rest of the task)`);

    const shown = await obra(['show', runId], { cwd: box.dir, env });
    expect(shown.stdout).toContain(`Granted: ${RULE}`);
    expect(shown.stdout).toContain(`  denied: the agent was refused Bash: ${COMMAND}`);
  });

  it('`--allow` takes Claude Code permission rules only; a bad one is refused before anything runs', async () => {
    const box = sandbox();
    const escalated = await obra(['run', '--task', 'x', '--agent-bin', FAKE_CLAUDE], { cwd: box.dir, env: envWith(box, [{ bash: [COMMAND], result: 'Need node.\nSTATUS: CONTINUE' }]) });
    expect(escalated.exitCode).toBe(3);
    const runId = runIdIn(box.dir);
    const bad = await obra(['answer', runId, '--allow', 'Bash(npm test'], { cwd: box.dir, env: box.env });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/^obra: --allow "Bash\(npm test" is not a Claude Code permission rule — write a tool name, optionally with what it may do in parentheses: [^\n]*$/);
    const empty = await obra(['answer', runId], { cwd: box.dir, env: box.env });
    expect(empty.exitCode).toBe(2);
    expect(empty.stderr).toContain('the answer is empty');
    expect(fakeCalls(box.dir)).toHaveLength(1);
  });

  it('permission_mode, allowed_tools and allow_checks from obra.yaml reach the CLI as flags', async () => {
    const box = sandbox();
    writeFileSync(join(box.dir, 'obra.yaml'), 'agent:\n  local:\n    permission_mode: plan\n    allowed_tools: [WebFetch, "Bash(git diff:*)"]\n    allow_checks: false\n');
    const run = await obra(['run', '--task', 'Plan it', '--check', 'true', '--agent-bin', FAKE_CLAUDE], { cwd: box.dir, env: envWith(box, ['Here is the plan; nothing to change.\nSTATUS: DONE']) });
    expect(run.exitCode, run.stderr).toBe(0);
    const argv: string[] = fakeCalls(box.dir)[0].argv;
    expect(argv.slice(argv.indexOf('--permission-mode'))).toEqual(['--permission-mode', 'plan', '--allowedTools', 'WebFetch', '--allowedTools', 'Bash(git diff:*)']);
    expect(argv).not.toContain('Bash(true)');
  });

  it('dangerously_skip_permissions passes --dangerously-skip-permissions; as root without IS_SANDBOX=1 it is refused up front, with why', async () => {
    const box = sandbox();
    const flags = ['run', '--task', 'Anything', '--agent-bin', FAKE_CLAUDE, '--set', 'agent.local.dangerously_skip_permissions=true'];
    if (process.getuid?.() === 0) {
      const refused = await obra(flags, { cwd: box.dir, env: envWith(box, ['ok\nSTATUS: DONE']) });
      expect(refused.exitCode).toBe(2);
      expect(refused.stderr).toMatch(/^obra: agent\.local\.dangerously_skip_permissions is refused by Claude Code when it runs as root \(uid 0\) — .*set IS_SANDBOX=1 in the environment if this machine is a disposable container or VM/);
      expect(existsSync(join(box.dir, '.obra'))).toBe(false);
    }
    const run = await obra(flags, { cwd: box.dir, env: envWith(box, ['Did it without asking.\nSTATUS: DONE'], { IS_SANDBOX: '1' }) });
    expect(run.exitCode, run.stderr).toBe(0);
    const argv: string[] = fakeCalls(box.dir)[0].argv;
    expect(argv).toContain('--dangerously-skip-permissions');
    expect(argv).not.toContain('--permission-mode');
  });
});
