import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { CLI, FAKE_CLAUDE, obra, sandbox } from '../helpers/cli.js';

const readJsonLines = (path: string) => readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l));

describe('the documented demo: `npm run demo -- --scenario checks`', () => {
  it('fails its acceptance check first, puts the check output into the next prompt, and passes on iteration 2', async () => {
    const box = sandbox();
    const run = await obra(['demo', '--scenario', 'checks', '--latency', '1', '--json', '--db', join(box.dir, '.obra')], { cwd: box.dir, env: box.env });
    expect(run.exitCode, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result.status).toBe('done');
    expect(result.iterations.map((i: { decision: string; decisionRule: string }) => [i.decision, i.decisionRule])).toEqual([
      ['retry', 'checksFailing'],
      ['done', 'acceptedAsDone'],
    ]);
    expect(result.iterations.map((i: { checks: { exitCode: number }[] }) => i.checks.map((c) => c.exitCode))).toEqual([[1], [0]]);
    expect(result.iterations[0].checks[0].command).toBe('grep -qx "Hello, world" greeting.txt');
    const records = readJsonLines(join(box.dir, '.obra', 'runs', result.runId, 'iterations.jsonl'));
    expect(records[1].prompt).toContain('The check `grep -qx "Hello, world" greeting.txt` failed (exit 1)');
    expect(readFileSync(join(result.workdir, 'greeting.txt'), 'utf8')).toBe('Hello, world\n');
  });

  it('prints the story on stderr in plain lines when not on a terminal, and writes run.log', async () => {
    const box = sandbox();
    const run = await obra(['demo', '--scenario', 'checks', '--latency', '1', '--db', join(box.dir, '.obra')], { cwd: box.dir, env: box.env });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toBe('');
    expect(run.stderr).not.toMatch(/\x1b|\r/);
    expect(run.stderr).toMatch(/\[iteration 1\] decision retry \(checksFailing\) quality \d\.\d\d confidence \d\.\d\d — check `grep -qx "Hello, world" greeting.txt` failed \(exit 1\)/);
    expect(run.stderr).toMatch(/ {4}check `grep -qx "Hello, world" greeting.txt` → exit 1 \(\d+ ms\)/);
    expect(run.stderr).toMatch(/\[iteration 2\] decision done \(acceptedAsDone\)/);
    const runId = readdirSync(join(box.dir, '.obra', 'runs'))[0]!;
    const log = readJsonLines(join(box.dir, '.obra', 'runs', runId, 'run.log'));
    expect(log.map((l) => l.msg).filter((m: string) => m.startsWith('Iteration'))).toEqual([
      expect.stringMatching(/^Iteration 1: retry \(checksFailing\)/),
      expect.stringMatching(/^Iteration 2: done \(acceptedAsDone\)/),
    ]);
    expect(log.at(-1)).toMatchObject({ event: 'run-finished', status: 'done', runId });
  });
});

describe('terminal output: --quiet, --verbose, and run.log with the seed\'s warning', () => {
  const replies = ['Wrote the module.\nSTATUS: CONTINUE', { busy: true }, { result: 'Wrote its tests; they pass.\nSTATUS: DONE', tools: ['Write', 'Bash'] }];
  const env = (box: ReturnType<typeof sandbox>) => ({ ...box.env, FAKE_CLAUDE_REPLIES: JSON.stringify(replies), OBRA_AGENT__LOCAL__RETRY_INITIAL_DELAY: '0.1' });

  it('--quiet prints nothing at all; the log file still has everything', async () => {
    const box = sandbox();
    const run = await obra(['run', '--task', 'Write a module', '--quiet', '--agent-bin', FAKE_CLAUDE], { cwd: box.dir, env: env(box) });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe('');
    const runId = readdirSync(join(box.dir, '.obra', 'runs'))[0]!;
    const log = readJsonLines(join(box.dir, '.obra', 'runs', runId, 'run.log'));
    const sessionId = JSON.parse(readFileSync(join(box.dir, '.obra', 'runs', runId, 'run.json'), 'utf8')).sessionId;
    expect(log).toContainEqual(expect.objectContaining({ level: 40, event: 'retry', msg: `Session ${sessionId} in use, retrying in 0.1s (attempt 1/5)` }));
    expect(log).toContainEqual(expect.objectContaining({ level: 30, event: 'response', msg: expect.stringMatching(/^Received response \(\d+ chars\) after 2 attempts$/) }));
  });

  it('--verbose adds the task states and the agent\'s tool calls; logging.file false writes no log', async () => {
    const box = sandbox();
    const run = await obra(['run', '--task', 'Write a module', '--verbose', '--set', 'logging.file=false', '--agent-bin', FAKE_CLAUDE], { cwd: box.dir, env: env(box) });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/task → running/);
    expect(run.stderr).toMatch(/ {4}tool: Write/);
    expect(run.stderr).toMatch(/ {4}confidence: validation 1: the answer is usable/);
    expect(run.stderr).not.toMatch(/\x1b|\r/);
    const runId = readdirSync(join(box.dir, '.obra', 'runs'))[0]!;
    expect(existsSync(join(box.dir, '.obra', 'runs', runId, 'run.log'))).toBe(false);
  });
});

describe('obra config', () => {
  it('prints the effective value of every option and where the non-defaults came from (file, env, flag)', async () => {
    const box = sandbox();
    writeFileSync(join(box.dir, 'obra.yaml'), 'decision:\n  stuck_after: 4\ntask:\n  checks: [npm test]\n');
    const run = await obra(['config', '--set', 'budget.max_cost_usd=2.5', '--db', 'elsewhere'], { cwd: box.dir, env: { ...box.env, OBRA_AGENT__LOCAL__MAX_RETRIES: '3' } });
    expect(run.exitCode, run.stderr).toBe(0);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(`# config file: ${join(box.dir, 'obra.yaml')}`);
    expect(lines).toContainEqual(expect.stringMatching(/^decision\.stuck_after +4 +# file .*obra\.yaml$/));
    expect(lines).toContainEqual(expect.stringMatching(/^task\.checks +\["npm test"\] +# file .*obra\.yaml$/));
    expect(lines).toContainEqual(expect.stringMatching(/^agent\.local\.max_retries +3 +# env OBRA_AGENT__LOCAL__MAX_RETRIES$/));
    expect(lines).toContainEqual(expect.stringMatching(/^budget\.max_cost_usd +2\.5 +# flag --set budget\.max_cost_usd$/));
    expect(lines).toContainEqual(expect.stringMatching(/^store\.dir +"elsewhere" +# flag --db$/));
    expect(lines).toContainEqual(expect.stringMatching(/^decision\.proceed_threshold +0\.7$/));

    const json = await obra(['config', '--json'], { cwd: box.dir, env: box.env });
    const parsed = JSON.parse(json.stdout);
    expect(parsed.config.decision.stuck_after).toBe(4);
    expect(parsed.sources['decision.stuck_after']).toBe(`file ${join(box.dir, 'obra.yaml')}`);
    expect(parsed.sources['decision.min_confidence']).toBe('default');
  });

  it('a threshold outside [0, 1] is one clear line, exit 2, for config and for run (nothing written)', async () => {
    const box = sandbox();
    writeFileSync(join(box.dir, 'obra.yaml'), 'decision:\n  proceed_threshold: 1.5\n');
    for (const args of [['config'], ['run', '--task', 'x', '--agent-bin', FAKE_CLAUDE]]) {
      const run = await obra(args, { cwd: box.dir, env: box.env });
      expect(run.exitCode).toBe(2);
      expect(run.stderr.trim().split('\n')).toEqual([`obra: config key "decision.proceed_threshold" (from file ${join(box.dir, 'obra.yaml')}): must be between 0 and 1 (it is above 1) — got 1.5`]);
    }
    expect(existsSync(join(box.dir, '.obra'))).toBe(false);
  });
});

describe('obra pause / obra cancel reach a run driven by another process', () => {
  /** Starts `obra run` in the background with slow fake answers; resolves with the run id once it is running. */
  async function background(box: ReturnType<typeof sandbox>, replies: unknown[]) {
    const child = execa('node', [CLI, 'run', '--task', 'Write a module', '--json', '--agent-bin', FAKE_CLAUDE], {
      cwd: box.dir,
      env: { ...box.env, FAKE_CLAUDE_REPLIES: JSON.stringify(replies), FAKE_CLAUDE_LATENCY_MS: '1500' },
      reject: false,
      timeout: 60_000,
    });
    const runs = join(box.dir, '.obra', 'runs');
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const id = existsSync(runs) ? readdirSync(runs)[0] : undefined;
      if (id && existsSync(join(runs, id, 'lock'))) return { child, runId: id };
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('the background run did not start');
  }

  it('cancel: the driving process stops its agent at once and exits 6; the command reports it', async () => {
    const box = sandbox();
    const { child, runId } = await background(box, ['Step one.\nSTATUS: CONTINUE', 'Step two.\nSTATUS: CONTINUE']);
    const started = Date.now();
    const cancel = await obra(['cancel', runId, '--reason', 'wrong task'], { cwd: box.dir, env: box.env });
    expect(cancel.exitCode, cancel.stderr).toBe(0);
    expect(cancel.stdout).toBe(`run ${runId} is cancelled`);
    const run = await child;
    expect(Date.now() - started).toBeLessThan(5000);
    expect(run.exitCode).toBe(6);
    expect(JSON.parse(run.stdout)).toMatchObject({ runId, status: 'cancelled', reason: 'wrong task' });
  });

  it('pause --wait: the run pauses after its current iteration (exit 7), and resume finishes it', async () => {
    const box = sandbox();
    // More steps than the pause can miss: on a loaded machine `obra pause` may start a call or two late.
    const replies = ['Wrote the module skeleton.\nSTATUS: CONTINUE', 'Wrote the parser.\nSTATUS: CONTINUE', 'Wrote the printer.\nSTATUS: CONTINUE', 'Wrote its tests; they pass.\nSTATUS: DONE'];
    const { child, runId } = await background(box, replies);
    const pause = await obra(['pause', runId, '--wait'], { cwd: box.dir, env: box.env });
    expect(pause.exitCode, pause.stderr).toBe(0);
    expect(pause.stdout).toBe(`run ${runId} is paused; \`obra resume ${runId}\` continues it`);
    const run = await child;
    expect(run.exitCode).toBe(7);
    const paused = JSON.parse(run.stdout);
    expect(paused).toMatchObject({ status: 'paused' });
    // It stopped after a finished iteration, before the task was done.
    expect(paused.iterations.length).toBeGreaterThanOrEqual(1);
    expect(paused.iterations.length).toBeLessThan(replies.length);
    expect(paused.iterations.every((i: { decision: string }) => i.decision === 'proceed')).toBe(true);
    const resumed = await obra(['resume', runId, '--json'], { cwd: box.dir, env: { ...box.env, FAKE_CLAUDE_REPLIES: JSON.stringify(replies) } });
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout).iterations.map((i: { decision: string }) => i.decision)).toEqual(['proceed', 'proceed', 'proceed', 'done']);
  });

  it('refuses clearly when there is nothing to do', async () => {
    const box = sandbox();
    const done = await obra(['run', '--task', 'Write a module', '--json', '--agent-bin', FAKE_CLAUDE], { cwd: box.dir, env: { ...box.env, FAKE_CLAUDE_REPLIES: JSON.stringify(['Wrote the module and tested it.\nSTATUS: DONE']) } });
    const runId = JSON.parse(done.stdout).runId;
    const pause = await obra(['pause', runId], { cwd: box.dir, env: box.env });
    expect(pause.exitCode).toBe(2);
    expect(pause.stderr).toBe(`obra: run ${runId} is not running (its status is done); there is nothing to pause`);
    const cancel = await obra(['cancel', 'nope'], { cwd: box.dir, env: box.env });
    expect(cancel.exitCode).toBe(2);
    expect(cancel.stderr).toMatch(/^obra: no run "nope"/);
  });
});

describe('Ctrl-C in `obra run`', () => {
  it('SIGINT stops the run at once (its agent process group killed), saved: exit 130, `interrupted`, and `obra resume` finishes it', async () => {
    const box = sandbox();
    const log = join(box.dir, 'fake.log');
    const env = { ...box.env, FAKE_CLAUDE_LOG: log, FAKE_CLAUDE_REPLIES: JSON.stringify([{ hang: true }, 'Finished the task after the interruption.\nSTATUS: DONE']) };
    const child = execa('node', [CLI, 'run', '--task', 'Write a module', '--agent-bin', FAKE_CLAUDE], { cwd: box.dir, env, reject: false });
    const entries = () => (existsSync(log) ? readJsonLines(log) : []);
    const deadline = Date.now() + 20_000;
    while (!entries().some((e) => e.outcome === 'hang-child') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGINT');
    const run = await child;
    expect(run.exitCode).toBe(130);
    expect(run.stderr).toContain('obra: SIGINT — stopping; the run is saved and `obra resume` continues it');
    expect(run.stderr).toMatch(/Run \S+: interrupted — interrupted; `obra resume <runId>` continues where it stopped/);
    // The call's process group went with it: the CLI and the child it started.
    const hung = entries().find((e) => e.outcome === 'hang')!;
    const hungChild = entries().find((e) => e.outcome === 'hang-child')!;
    const gone = (pid: number) => {
      try {
        process.kill(pid, 0);
        return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.startsWith('Z');
      } catch {
        return true;
      }
    };
    await new Promise((r) => setTimeout(r, 300));
    expect([gone(hung.pid), gone(hungChild.childPid)]).toEqual([true, true]);

    const runId = readdirSync(join(box.dir, '.obra', 'runs'))[0]!;
    const listed = await obra(['runs', '--json'], { cwd: box.dir, env: box.env });
    expect(JSON.parse(listed.stdout)).toEqual([expect.objectContaining({ runId, status: 'interrupted' })]);
    const resumed = await obra(['resume', runId, '--json', '--agent-bin', FAKE_CLAUDE], { cwd: box.dir, env });
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ status: 'done', iterations: [{ index: 1, decision: 'done' }] });
  });
});
