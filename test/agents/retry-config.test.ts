import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { ScriptedAgent, type ScriptedReply } from '../../src/agents/scripted-agent.js';
import { loadConfig } from '../../src/config/load.js';
import type { IterationRecord } from '../../src/core/types.js';
import { runTask, type EngineEvent } from '../../src/index.js';
import { FAKE_CLAUDE, obra, sandbox } from '../helpers/cli.js';

/**
 * The backoff options as a user sets them — an obra.yaml read by loadConfig, OBRA_* variables, `--set` on the
 * built CLI — observed end to end in the recorded waits of the iteration (the RetryPolicy is never built by
 * hand here: these tests catch a retryPolicyFromConfig that drops or miswires an option).
 */

const tempDir = (prefix: string) => mkdtempSync(join(tmpdir(), prefix));
const DONE = 'Reviewed everything; the function and its tests are complete.\nSTATUS: DONE';
/** "Session ID x is already in use" from the CLI (no Obra holder): the first one, while creating, only switches to --resume. */
const BUSY: ScriptedReply = { outcome: { kind: 'sessionBusy', message: 'Error: Session ID x is already in use.' } };
const RATE_429: ScriptedReply = { outcome: { kind: 'rateLimited', status: 429, message: 'API Error: Request rejected (429) · rate_limit_error' } };
/** The default session backoff without a cap or jitter: 2.0 s × 1.5^n. */
const UNCAPPED = [2000, 3000, 4500, 6750, 10_125];

/** A config as a user writes it: obra.yaml in a project folder, read by loadConfig (no env, no flags). */
function configFromYaml(yaml: string) {
  const dir = tempDir('obra-yaml-');
  const file = join(dir, 'obra.yaml');
  writeFileSync(file, yaml);
  const loaded = loadConfig({ file, env: {}, cwd: dir });
  expect(loaded.file).toBe(file);
  return loaded.config;
}

/**
 * Runs one task with the in-process agent on a SimulatedClock: whenever the engine starts a backoff wait, the
 * clock jumps to its due time (nothing really waits). Returns the result, the engine's retry events, the
 * agent's requests with the simulated time of each call, and the records as persisted on disk.
 */
async function simulatedRun(script: ScriptedReply[], config: ReturnType<typeof configFromYaml>, runId?: string) {
  const clock = new SimulatedClock();
  clock.set(1_700_000_000_000);
  const events: EngineEvent[] = [];
  const callTimes: number[] = [];
  const agent = new ScriptedAgent(() => {
    callTimes.push(clock.now());
    return script[Math.min(callTimes.length - 1, script.length - 1)]!;
  }, { now: () => clock.now() });
  const storeDir = tempDir('obra-store-');
  const result = await runTask({
    task: 'Add a greet(name) function',
    workdir: storeDir,
    storeDir,
    agent,
    config,
    clock,
    runId,
    onEvent: (event) => {
      events.push(event);
      if (event.type === 'retry') setImmediate(() => clock.set(event.dueAt));
    },
  });
  const records = readFileSync(join(storeDir, 'runs', result.runId, 'iterations.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as IterationRecord);
  const retries = events.filter((e): e is Extract<EngineEvent, { type: 'retry' }> => e.type === 'retry');
  const gaps = callTimes.slice(1).map((t, i) => t - callTimes[i]!);
  return { result, records, retries, requests: agent.requests, callTimes, gaps };
}

/** create → "in use" (switch to --resume, no wait), then `waits` more "in use", then the answer. */
const busyThenDone = (waits: number): ScriptedReply[] => [BUSY, ...Array.from({ length: waits }, () => BUSY), DONE];

describe('agent.local.retry_max_delay from the config file', () => {
  it('caps every wait at retry_max_delay: 2.0, 3.0, then 4.0 s three times (recorded, announced and really waited)', async () => {
    const config = configFromYaml('agent:\n  local:\n    retry_max_delay: 4\n');
    expect(config.agent.local.retry_max_delay).toBe(4);
    const run = await simulatedRun(busyThenDone(5), config);

    expect(run.result.status).toBe('done');
    expect(run.records[0]!.retryDelaysMs).toEqual([2000, 3000, 4000, 4000, 4000]);
    expect(run.retries.map((r) => `${r.attempt}/${r.maxRetries} ${r.delayMs}`)).toEqual(['1/5 2000', '2/5 3000', '3/5 4000', '4/5 4000', '5/5 4000']);
    // The calls on the simulated clock: the switch to --resume at once, then one call per wait, each exactly its delay later.
    expect(run.gaps).toEqual([0, 2000, 3000, 4000, 4000, 4000]);
    expect(run.requests.map((r) => r.mode)).toEqual(['create', 'resume', 'resume', 'resume', 'resume', 'resume', 'resume']);
  });

  it('without it (the default 60 s cap) the same script waits the uncapped sequence: the cap above came from the file', async () => {
    const run = await simulatedRun(busyThenDone(5), configFromYaml('agent:\n  local:\n    max_retries: 5\n'));
    expect(run.records[0]!.retryDelaysMs).toEqual(UNCAPPED);
  });

  it('caps the rate-limit waits with rate_limit_max_delay, independently of retry_max_delay', async () => {
    const config = configFromYaml('agent:\n  local:\n    retry_max_delay: 2.5\n    rate_limit_max_delay: 20\n');
    const run = await simulatedRun([BUSY, BUSY, BUSY, RATE_429, RATE_429, RATE_429, DONE], config);
    // Session waits 2.0, min(3.0, 2.5); rate-limit waits 15, min(30, 20), min(60, 20).
    expect(run.records[0]!.retryDelaysMs).toEqual([2000, 2500, 15_000, 20_000, 20_000]);
  });
});

describe('agent.local.retry_jitter from the config file', () => {
  // Three session waits and two rate-limit waits: both policies take their jitter from retry_jitter.
  const script = [BUSY, BUSY, BUSY, BUSY, RATE_429, RATE_429, DONE];
  const caps = [2000, 3000, 4500, 15_000, 30_000];
  const kinds = ['sessionBusy', 'sessionBusy', 'sessionBusy', 'rateLimited', 'rateLimited'];

  const jittered = async (jitter: 'none' | 'full' | 'equal', runId: string) => {
    const config = configFromYaml(`agent:\n  local:\n    retry_jitter: ${jitter}\n`);
    const run = await simulatedRun(script, config, runId);
    expect(run.result.status).toBe('done');
    expect(run.retries.map((r) => r.kind)).toEqual(kinds);
    // What was recorded is what was waited on the clock and what was announced.
    expect(run.gaps.slice(1, 6)).toEqual(run.records[0]!.retryDelaysMs);
    expect(run.retries.map((r) => r.delayMs)).toEqual(run.records[0]!.retryDelaysMs);
    return run.records[0]!.retryDelaysMs;
  };

  it('none: exactly the exponential sequence', async () => {
    expect(await jittered('none', 'jitter-run-a')).toEqual(caps);
  });

  it('full and equal: within their bounds, not the plain sequence, seeded by the run (same run id → same waits)', async () => {
    const full = await jittered('full', 'jitter-run-a');
    const equal = await jittered('equal', 'jitter-run-a');
    for (const [name, delays] of [['full', full], ['equal', equal]] as const) {
      expect(delays, name).not.toEqual(caps);
      delays.forEach((delay, i) => {
        expect(delay, `${name} wait ${i + 1}`).toBeLessThanOrEqual(caps[i]!);
        expect(delay, `${name} wait ${i + 1}`).toBeGreaterThanOrEqual(name === 'equal' ? caps[i]! / 2 : 0);
      });
      // Both policies are jittered (the session waits and the rate-limit waits).
      expect(delays.slice(0, 3), name).not.toEqual(caps.slice(0, 3));
      expect(delays.slice(3), name).not.toEqual(caps.slice(3));
    }
    // The same random number per call drives both kinds: equal = cap/2 + (full)/2, up to rounding.
    equal.forEach((delay, i) => expect(Math.abs(delay - (caps[i]! / 2 + full[i]! / 2))).toBeLessThanOrEqual(1));
    expect(equal).not.toEqual(full);

    // A second run with the same id (another store) waits exactly the same; another id waits differently.
    expect(await jittered('full', 'jitter-run-a')).toEqual(full);
    expect(await jittered('equal', 'jitter-run-a')).toEqual(equal);
    expect(await jittered('full', 'jitter-run-b')).not.toEqual(full);
  });
});

describe('agent.local.on_lock_exhausted from the config file', () => {
  it('fresh: after max_retries the iteration goes on in a new session (mode create, a new id, a note why)', async () => {
    const config = configFromYaml('agent:\n  local:\n    max_retries: 2\n    on_lock_exhausted: fresh\n');
    const run = await simulatedRun([BUSY, BUSY, BUSY, BUSY, DONE], config);

    expect(run.result.status).toBe('done');
    const [record] = run.records;
    const original = run.requests[0]!.sessionId!;
    expect(run.requests.map((r) => `${r.mode} ${r.sessionId === original ? 'U' : r.sessionId}`)).toEqual(['create U', 'resume U', 'resume U', 'resume U', 'create null']);
    expect(record!.retryDelaysMs).toEqual([2000, 3000]);
    expect(record!.failure).toBeNull();
    expect(record!.decision).toBe('done');
    expect(record!.sessionId).not.toBe(original);
    expect(record!.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(record!.sessionMode).toBe('create');
    expect(record!.sessionNotes).toEqual([
      `session ${original} already exists (an earlier call created it): resuming it with --resume instead of waiting`,
      `session ${original} was still in use after 2 retries (the CLI kept refusing it): continuing in a new session; the prompt carries the task's history`,
    ]);
    // The fresh call came at once after the last refusal: no third wait.
    expect(run.gaps).toEqual([0, 2000, 3000, 0]);
  });

  it('fail (the default, and said explicitly): the iteration and the run fail with the documented reason', async () => {
    for (const yaml of ['agent:\n  local:\n    max_retries: 2\n', 'agent:\n  local:\n    max_retries: 2\n    on_lock_exhausted: fail\n']) {
      const run = await simulatedRun([BUSY, BUSY, BUSY, BUSY, DONE], configFromYaml(yaml));
      const original = run.requests[0]!.sessionId!;
      const reason = `session ${original} still busy after 2 retries (waited 5.000s); set agent.local.on_lock_exhausted: fresh to continue in a new session instead`;
      expect(run.result.status).toBe('failed');
      expect(run.result.reason).toBe(reason);
      expect(run.records).toHaveLength(1);
      expect(run.records[0]!).toMatchObject({ decision: 'fail', decisionRule: 'iterationFailed', failure: reason, retryDelaysMs: [2000, 3000] });
      expect(run.requests.map((r) => r.mode)).toEqual(['create', 'resume', 'resume', 'resume']);
      expect(run.requests.every((r) => r.sessionId === original)).toBe(true);
    }
  });
});

describe('the backoff options through the built CLI and the environment, with the fake Claude CLI', () => {
  const busyReplies = (n: number) => [...Array.from({ length: n }, () => ({ busy: true })), DONE];
  const recordsOf = (dir: string, runId: string) =>
    readFileSync(join(dir, '.obra', 'runs', runId, 'iterations.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as IterationRecord);

  it('--set agent.local.retry_max_delay caps the waits; OBRA_AGENT__LOCAL__RETRY_JITTER=equal jitters them', async () => {
    const box = sandbox();
    // Busy from the start: the first "in use" (while creating) switches to --resume, the next three are waited out.
    const env = { ...box.env, FAKE_CLAUDE_REPLIES: JSON.stringify(busyReplies(4)), OBRA_AGENT__LOCAL__RETRY_INITIAL_DELAY: '0.05' };
    const capped = await obra(['run', '--task', 'Write a module', '--json', '--agent-bin', FAKE_CLAUDE, '--set', 'agent.local.retry_max_delay=0.06'], { cwd: box.dir, env });
    expect(capped.exitCode, capped.stderr).toBe(0);
    const cappedRun = JSON.parse(capped.stdout);
    // 50, min(75, 60), min(112.5, 60).
    expect(cappedRun.iterations[0].retryDelaysMs).toEqual([50, 60, 60]);
    expect(recordsOf(box.dir, cappedRun.runId)[0]!.retryDelaysMs).toEqual([50, 60, 60]);

    const box2 = sandbox();
    const env2 = { ...box2.env, FAKE_CLAUDE_REPLIES: JSON.stringify(busyReplies(4)), OBRA_AGENT__LOCAL__RETRY_INITIAL_DELAY: '0.05', OBRA_AGENT__LOCAL__RETRY_JITTER: 'equal' };
    const jittered = await obra(['run', '--task', 'Write a module', '--json', '--agent-bin', FAKE_CLAUDE], { cwd: box2.dir, env: env2 });
    expect(jittered.exitCode, jittered.stderr).toBe(0);
    const delays = JSON.parse(jittered.stdout).iterations[0].retryDelaysMs as number[];
    const caps = [50, 75, 112.5];
    expect(delays).toHaveLength(3);
    expect(delays).not.toEqual([50, 75, 112.5]);
    delays.forEach((d, i) => {
      expect(d).toBeGreaterThanOrEqual(caps[i]! / 2);
      expect(d).toBeLessThanOrEqual(Math.round(caps[i]!));
    });
  });

  it('--set agent.local.on_lock_exhausted=fresh: exit 0 in a new session; without it: exit 1 with the reason', async () => {
    const base = (box: ReturnType<typeof sandbox>) => ({ ...box.env, FAKE_CLAUDE_REPLIES: JSON.stringify(busyReplies(4)), OBRA_AGENT__LOCAL__RETRY_INITIAL_DELAY: '0.02' });
    const args = ['run', '--task', 'Write a module', '--json', '--agent-bin', FAKE_CLAUDE, '--set', 'agent.local.max_retries=2'];

    const freshBox = sandbox();
    const fresh = await obra([...args, '--set', 'agent.local.on_lock_exhausted=fresh'], { cwd: freshBox.dir, env: base(freshBox) });
    expect(fresh.exitCode, fresh.stderr).toBe(0);
    const freshRun = JSON.parse(fresh.stdout);
    const record = recordsOf(freshBox.dir, freshRun.runId)[0]!;
    expect(record.sessionMode).toBe('create');
    const note = (record.sessionNotes ?? []).at(-1) ?? '';
    expect(note).toMatch(/was still in use after 2 retries \(the CLI kept refusing it\): continuing in a new session/);
    const first = note.match(/^session (\S+) /)![1];
    expect(record.sessionId).not.toBe(first);

    const failBox = sandbox();
    const failed = await obra(args, { cwd: failBox.dir, env: base(failBox) });
    expect(failed.exitCode).toBe(1);
    const failedRun = JSON.parse(failed.stdout);
    expect(failedRun.status).toBe('failed');
    expect(failedRun.reason).toMatch(/^session \S+ still busy after 2 retries \(waited 0\.\d{3}s\); set agent\.local\.on_lock_exhausted: fresh to continue in a new session instead$/);
  });
});
