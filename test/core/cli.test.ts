import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FAKE_CLAUDE, obra, sandbox } from '../helpers/cli.js';

const PIPELINE = ['building', 'prompting', 'awaitingAgent', 'validating', 'scoring', 'deciding', 'persisting'];

describe('obra run with the fake Claude CLI', () => {
  it('finishes a task: --json result, eight states per iteration, backoff only where the CLI said busy', async () => {
    const box = sandbox();
    const replies = ['Wrote the module.\nSTATUS: CONTINUE', { busy: true }, 'Wrote its tests; they pass.\nSTATUS: DONE'];
    const run = await obra(['run', '--task', 'Write a module', '--json', '--agent-bin', FAKE_CLAUDE], {
      cwd: box.dir,
      env: { ...box.env, FAKE_CLAUDE_REPLIES: JSON.stringify(replies), OBRA_AGENT__LOCAL__RETRY_INITIAL_DELAY: '0.1' },
    });
    expect(run.exitCode, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result.status).toBe('done');
    expect(result.iterations.map((i: { index: number }) => i.index)).toEqual([1, 2]);
    expect(result.iterations[0].states).toEqual(PIPELINE);
    expect(result.iterations[1].states).toEqual(['building', 'prompting', 'awaitingAgent', 'retryingSessionLock', 'awaitingAgent', 'validating', 'scoring', 'deciding', 'persisting']);
    expect(result.iterations.map((i: { attempts: number }) => i.attempts)).toEqual([1, 2]);
    expect(result.iterations.map((i: { decision: string }) => i.decision)).toEqual(['proceed', 'done']);
    for (const it of result.iterations) {
      expect(it.sessionId).toBe(result.sessionId);
      expect(it.quality).toBeGreaterThanOrEqual(0.7);
      expect(it.confidence).toBeGreaterThan(0);
    }
    // Progress went to stderr in the seed's shapes; stdout held only the JSON.
    expect(run.stderr).toContain(`WARNING Session ${result.sessionId} in use, retrying in 0.1s (attempt 1/5)`);
    expect(run.stderr).toContain(`INFO Received response (${(replies[2] as string).length} chars) after 2 attempts`);
    // The default store is .obra/ in the working directory, and `obra show --json` reads the same result back.
    expect(existsSync(join(box.dir, '.obra', 'runs', result.runId, 'run.json'))).toBe(true);
    const shown = await obra(['show', result.runId, '--json'], { cwd: box.dir, env: box.env });
    expect(JSON.parse(shown.stdout)).toEqual(result);
  });

  it('exits 3 when the run needs a human and 0 after `obra answer` finishes it', async () => {
    const box = sandbox();
    const question = 'Which database should I migrate?';
    const replies = [question, question, question, 'Migrated the users table in Postgres as you said.\nSTATUS: DONE'];
    const env = { ...box.env, FAKE_CLAUDE_REPLIES: JSON.stringify(replies) };
    const run = await obra(['run', '--task', 'Migrate the database', '--json', '--agent-bin', FAKE_CLAUDE], { cwd: box.dir, env });
    expect(run.exitCode).toBe(3);
    const escalated = JSON.parse(run.stdout);
    expect(escalated.status).toBe('escalated');
    expect(escalated.iterations.at(-1).decision).toBe('escalate');
    const answered = await obra(['answer', escalated.runId, 'The users table in Postgres', '--json'], { cwd: box.dir, env });
    expect(answered.exitCode, answered.stderr).toBe(0);
    const done = JSON.parse(answered.stdout);
    expect(done.status).toBe('done');
    expect(done.iterations).toHaveLength(4);
    // The human's answer was in the next prompt.
    const records = readFileSync(join(box.dir, '.obra', 'runs', escalated.runId, 'iterations.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(records[3].prompt).toContain('The users table in Postgres');
  });

  it('exits 4 at max_iterations', async () => {
    const box = sandbox();
    const replies = ['Step one.\nSTATUS: CONTINUE', 'Step two.\nSTATUS: CONTINUE'];
    const run = await obra(['run', '--task', 'Long task', '--max-iterations', '2', '--json', '--agent-bin', FAKE_CLAUDE], {
      cwd: box.dir,
      env: { ...box.env, FAKE_CLAUDE_REPLIES: JSON.stringify(replies) },
    });
    expect(run.exitCode).toBe(4);
    expect(JSON.parse(run.stdout).status).toBe('max_iterations');
  });
});

describe('bad input: one line, exit 2, no stack trace, nothing written', () => {
  const cases: [string, (dir: string) => string[], RegExp][] = [
    ['an unknown flag', () => ['run', '--task', 'x', '--bogus'], /^obra: unknown option '--bogus'/],
    ['a mistyped flag', () => ['run', '--tsk', 'x'], /unknown option '--tsk' \(Did you mean --task\?\)/],
    ['a missing --task', () => ['run'], /^obra: missing --task/],
    ['an unreadable config', (dir) => ['run', '--task', 'x', '--config', join(dir, 'nope.yaml')], /^obra: cannot read config file .*nope\.yaml: ENOENT/],
    ['a config value of the wrong type', (dir) => ['run', '--task', 'x', '--config', write(dir, 'agent:\n  local:\n    max_retries: five\n')], /config key "agent\.local\.max_retries" .*expected number.*"five"/],
    ['an unknown config key', (dir) => ['run', '--task', 'x', '--config', write(dir, 'task:\n  max_iteration: 3\n')], /unknown config key "task\.max_iteration" .*did you mean "task\.max_iterations"\?/],
    ['a YAML syntax error', (dir) => ['run', '--task', 'x', '--config', write(dir, 'agent:\n  local: [\n')], /^obra: .*obra\.yaml:3:1: Flow sequence in block collection must be sufficiently indented and end with a \]$/m],
    ['a missing claude binary', (dir) => ['run', '--task', 'x', '--agent-bin', join(dir, 'no-claude')], /^obra: the agent binary ".*no-claude" was not found .*--agent-bin/],
    ['an unknown run', () => ['show', 'no-such-run'], /^obra: no Obra store at|^obra: no run "no-such-run"/],
  ];

  it.each(cases)('%s', async (_label, args, message) => {
    const box = sandbox();
    const result = await obra(args(box.dir), { cwd: box.dir, env: { ...box.env, PATH: process.env.PATH ?? '' } });
    expect(result.exitCode).toBe(2);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(result.stdout).toBe('');
    expect(existsSync(join(box.dir, '.obra'))).toBe(false);
  });
});

function write(dir: string, yaml: string): string {
  const path = join(dir, 'obra.yaml');
  writeFileSync(path, yaml);
  return path;
}
