import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FAKE_CLAUDE, obra, sandbox } from '../helpers/cli.js';
import { configSchema } from '../../src/config/schema.js';
import { Notifier } from '../../src/notify/notifier.js';
import { journalSpan } from '../queue/helpers.js';
import { receiver } from './helpers.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * `obra work`'s notifications: a webhook receiver here gets one POST per event (needs a human, done, failed,
 * parked until a usage limit resets), the first answered 500 and sent again; a receiver that never answers slows
 * no task; a bad URL is a config error.
 */

function setup(yaml: string, replies: unknown[]) {
  const box = sandbox();
  writeFileSync(join(box.dir, 'obra.yaml'), yaml);
  const env = { ...box.env, OBRA_CLAUDE_BIN: FAKE_CLAUDE, FAKE_CLAUDE_REPLIES: JSON.stringify(replies), FAKE_CLAUDE_REPLY_BY: 'turn' };
  const folder = (name: string) => {
    const dir = join(box.dir, name);
    mkdirSync(dir);
    return dir;
  };
  const submit = async (task: string, args: string[]) => {
    const r = await obra(['submit', '--task', task, '--json', ...args], { cwd: box.dir, env });
    expect(r.exitCode, r.stderr).toBe(0);
    return (JSON.parse(r.stdout) as { runId: string }).runId;
  };
  return { ...box, env, folder, submit };
}

const notifyYaml = (url: string, extra = '') => `notify:\n  webhooks: ["${url}"]\n  webhook_retry_delay: 0.1\n  desktop: false\n${extra}`;

describe('notifications from obra work', () => {
  it('one POST per event: done, needs a human, failed, parked; a 500 is retried', async () => {
    const hook = await receiver((n) => (n === 1 ? 500 : 200));
    try {
      // Every task's turn 1 runs a command: allowed by a rule for two of them, refused (a human is asked) for one.
      const s = setup(notifyYaml(hook.url, '  link: http://board.example:7070/\n'), [{ result: 'Ran the script.\nSTATUS: DONE', bash: ['printf x > done.txt'] }]);
      const allow = ['--set', 'agent.local.allowed_tools=["Bash(printf x > done.txt)"]'];
      const done = await s.submit('Finish', ['--repo', s.folder('a'), '--check', 'test -f done.txt', ...allow]);
      const waiting = await s.submit('Needs a rule', ['--repo', s.folder('b'), '--check', 'test -f done.txt']);
      const failing = await s.submit('Never passes', ['--repo', s.folder('c'), '--check', 'false', '--set', 'task.max_iterations=1', ...allow]);
      const worked = await obra(['work', '--until-idle', '--concurrency', '1'], { cwd: s.dir, env: s.env });
      expect(worked.exitCode, worked.stderr).toBe(4);
      expect(worked.stderr).not.toContain('WARNING');

      expect(hook.requests()).toBe(4);
      const byRun = Object.fromEntries(hook.bodies.map((b) => [b.runId, b]));
      expect(hook.bodies).toHaveLength(3);
      expect(byRun[done]).toMatchObject({ event: 'done', task: 'Finish', status: 'done', link: `http://board.example:7070/runs/${done}` });
      expect(byRun[waiting]).toMatchObject({ event: 'needs-human', task: 'Needs a rule', status: 'escalated' });
      expect(byRun[waiting]!.reason).toContain('Bash');
      expect(byRun[failing]).toMatchObject({ event: 'failed', task: 'Never passes', status: 'max_iterations' });
      expect(Object.keys(byRun[done]!).sort()).toEqual(['at', 'event', 'link', 'reason', 'runId', 'status', 'task']);

      // A subscriber's usage limit, reset a second later: the task is parked, then goes on to done.
      const limited = setup(notifyYaml(hook.url, 'agent:\n  local:\n    usage_limit_margin: 0\n'), [
        { usage_limit: { type: 'five_hour', resets_in_s: 1 } },
        'Done after the reset.\nSTATUS: DONE',
      ]);
      const parked = await limited.submit('Hits the limit', ['--repo', limited.folder('d')]);
      const env = { ...limited.env, CLAUDE_CODE_OAUTH_TOKEN: 'subscriber', FAKE_CLAUDE_REPLY_BY: '' };
      const again = await obra(['work', '--until-idle'], { cwd: limited.dir, env });
      expect(again.exitCode, again.stderr).toBe(0);
      expect(hook.bodies.filter((b) => b.runId === parked).map((b) => [b.event, b.status])).toEqual([
        ['parked', 'waiting'],
        ['done', 'done'],
      ]);
      expect(hook.bodies.find((b) => b.event === 'parked')!.reason).toMatch(/^usage limit \(five_hour\) — resumes at /);
    } finally {
      await hook.close();
    }
  });

  it('a receiver that never answers slows no task; a bad URL is a config error', async () => {
    const dead = await receiver(() => null);
    try {
      const replies = [{ result: 'Done.\nSTATUS: DONE', latency_ms: 300 }];
      const timed = async (yaml: string) => {
        const s = setup(yaml, replies);
        const runId = await s.submit('Finish', ['--repo', s.folder('a')]);
        const started = Date.now();
        const r = await obra(['work', '--until-idle'], { cwd: s.dir, env: s.env });
        expect(r.exitCode, r.stderr).toBe(0);
        const [from, to] = journalSpan(join(s.dir, '.obra'), runId);
        return { task: to - from, wall: Date.now() - started, stderr: r.stderr };
      };
      const without = await timed('notify:\n  desktop: false\n');
      const withDead = await timed(notifyYaml(dead.url, '  webhook_timeout: 30\n'));
      process.stderr.write(`task time without a receiver ${without.task} ms, with one that never answers ${withDead.task} ms (obra work: ${without.wall} ms, ${withDead.wall} ms)\n`);
      // A delivery that held the task up would cost it the whole 30 s timeout; the margin is the machine's noise.
      expect(withDead.task).toBeLessThan(without.task + 1500);
      // Only the exit waits, and only so long, for the delivery still in flight.
      expect(withDead.stderr).toContain('obra: WARNING 1 notification still undelivered after 5 s: given up');
      expect(withDead.wall).toBeLessThan(without.wall + 8000);
    } finally {
      await dead.close();
    }
    const box = sandbox();
    writeFileSync(join(box.dir, 'obra.yaml'), 'notify:\n  webhooks: ["ftp://example.com/hook"]\n');
    const r = await obra(['work', '--until-idle'], { cwd: box.dir, env: box.env });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/^obra: .*notify\.webhooks\.0.*expected an http\(s\) URL such as https:\/\/hooks\.example\.com\/obra/);
  });
});

describe('the desktop and the bell', () => {
  it('notify-send gets a title and the task; the bell rings on a terminal only', async () => {
    const box = sandbox();
    // A stand-in notify-send that writes down its arguments.
    const log = join(box.dir, 'notify-send.log');
    const fake = join(box.dir, 'notify-send');
    writeFileSync(fake, `#!/bin/sh\nprintf '%s\\n' "$@" >> '${log}'\n`);
    chmodSync(fake, 0o755);
    const rung: string[] = [];
    const terminal = { isTTY: true, write: (text: string) => rung.push(text) } as unknown as NodeJS.WriteStream;
    const notify = configSchema.parse({}).notify;
    const notifier = new Notifier(notify, { bell: terminal, desktopCommand: fake });
    notifier.notify({ event: 'needs-human', runId: 'r1', task: 'Add a README', status: 'escalated', reason: 'may I write README.md?' });
    await notifier.flush(5000);
    await waitFor(() => readFileSync(log, 'utf8').includes('may I write'), { what: 'notify-send to be called' });
    expect(readFileSync(log, 'utf8')).toBe('--app-name=obra\nObra: a task needs you\nAdd a README\nmay I write README.md?\n');
    expect(rung).toEqual(['\x07']);

    // Not a terminal (a pipe, a log file), or bell: false: no bell; desktop: false: no notify-send.
    const piped: string[] = [];
    new Notifier(notify, { bell: { isTTY: false, write: (t: string) => piped.push(t) } as unknown as NodeJS.WriteStream, desktopCommand: null }).notify({ event: 'done', runId: 'r2', task: 't', status: 'done', reason: '' });
    const quiet = new Notifier({ ...notify, bell: false, desktop: false }, { bell: terminal, desktopCommand: fake });
    expect(quiet.enabled).toBe(false);
    quiet.notify({ event: 'done', runId: 'r3', task: 't', status: 'done', reason: '' });
    await quiet.flush(1000);
    expect(piped).toEqual([]);
    expect(rung).toEqual(['\x07']);
    expect(readFileSync(log, 'utf8').split('\n').filter((l) => l.startsWith('Obra:'))).toEqual(['Obra: a task needs you']);
  });
});
