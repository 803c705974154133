import { randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import type { AgentProgress } from '../../src/agents/agent.js';
import { ClaudeCodeAgent, KEPT_STDOUT_CHARS } from '../../src/agents/claude-code-agent.js';
import { UserError } from '../../src/core/errors.js';
import { processStart } from '../../src/core/process.js';
import { FAKE_CLAUDE, fakeWorld, isAlive, until } from './fake-env.js';

const request = (world: ReturnType<typeof fakeWorld>, extra: Partial<Parameters<ClaudeCodeAgent['call']>[0]> = {}) => ({
  runId: 'r',
  index: 1,
  attempt: 1,
  prompt: 'Write greet.js',
  sessionId: randomUUID(),
  mode: 'create' as const,
  workdir: world.workdir,
  ...extra,
});

/** A script standing in for a broken `claude`. */
function script(world: ReturnType<typeof fakeWorld>, name: string, body: string): string {
  const file = join(world.root, name);
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

describe('ClaudeCodeAgent with the fake CLI', () => {
  it('sends the prompt on stdin, parses stream-json, and reports tool calls and text as progress', async () => {
    const world = fakeWorld();
    const prompt = `Long prompt ${'x'.repeat(300_000)} end`; // far beyond any argv limit
    const agent = world.agent({ FAKE_CLAUDE_REPLIES: JSON.stringify([{ result: 'Wrote greet.js\nSTATUS: DONE', tools: ['Read', 'Edit'] }]) });
    const progress: AgentProgress[] = [];
    const call = await agent.call(request(world, { prompt, onProgress: (p) => progress.push(p) }));
    expect(call.outcome.kind).toBe('answer');
    expect(call.argv.slice(1, 6)).toEqual(['-p', '--output-format', 'stream-json', '--verbose', '--session-id']);
    expect(call.argv.join(' ')).not.toContain('Long prompt');
    // The fake kept the prompt it read from stdin in the transcript, whole.
    expect(JSON.parse(world.transcript(call.sessionId)[0]!).message.content).toBe(prompt);
    expect(progress.map((p) => (p.kind === 'tool' ? `tool:${p.name}` : p.kind === 'text' ? `text:${p.text}` : p.kind))).toEqual([
      'started',
      'tool:Read',
      'tool:Edit',
      'text:Wrote greet.js\nSTATUS: DONE',
    ]);
  });

  it('resumes instead of creating when the transcript already exists (a first call that was killed used up the id)', async () => {
    const world = fakeWorld();
    const agent = world.agent();
    const sessionId = randomUUID();
    await agent.call(request(world, { sessionId }));
    const second = await agent.call(request(world, { sessionId, mode: 'create' }));
    expect(second.mode).toBe('resume');
    expect(second.outcome.kind).toBe('answer');
    expect(world.sessionFlags()).toEqual([`create ${sessionId}`, `resume ${sessionId}`]);
  });

  it('a fork reports the new session id and leaves the parent transcript as it was', async () => {
    const world = fakeWorld();
    const agent = world.agent();
    const parent = randomUUID();
    await agent.call(request(world, { sessionId: parent }));
    const before = world.transcript(parent);
    const fork = await agent.call(request(world, { sessionId: parent, mode: 'fork' }));
    expect(fork.outcome.kind).toBe('answer');
    expect(fork.sessionId).not.toBe(parent);
    expect(world.transcript(parent)).toEqual(before);
    expect(world.transcript(fork.sessionId).length).toBe(before.length + 2);
  });

  it('answers sessionBusy with the holder, without starting the CLI, while another call holds the session', async () => {
    const world = fakeWorld();
    const agent = world.agent({ FAKE_CLAUDE_LATENCY_MS: '400' });
    const sessionId = randomUUID();
    const first = agent.call(request(world, { sessionId }));
    await until(() => world.calls().length > 0 || world.transcript(sessionId).length > 0, 5000, 'the first call to start');
    const second = await agent.call(request(world, { sessionId, mode: 'resume' }));
    expect(second.outcome).toEqual({ kind: 'sessionBusy', holder: 'another task in this process', message: expect.stringContaining(sessionId) });
    expect(second.exitCode).toBeNull();
    expect((await first).outcome.kind).toBe('answer');
    expect(world.sessionFlags()).toEqual([`create ${sessionId}`]);
  });

  it('classifies the CLI error classes (session in use, no conversation, rate limit, overloaded, auth, bad flag)', async () => {
    const world = fakeWorld();
    const u = randomUUID();
    await world.agent().call(request(world, { sessionId: u }));
    const kinds: Record<string, unknown> = {};
    kinds.inUse = (await world.agent({ FAKE_CLAUDE_FAIL: 'busy' }).call(request(world, { sessionId: u, mode: 'resume' }))).outcome;
    kinds.noConversation = (await world.agent().call(request(world, { sessionId: randomUUID(), mode: 'resume' }))).outcome;
    kinds.rateLimited = (await world.agent({ FAKE_CLAUDE_FAIL: 'rate-limit' }).call(request(world, { sessionId: u, mode: 'resume' }))).outcome;
    kinds.overloaded = (await world.agent({ FAKE_CLAUDE_FAIL: 'overloaded' }).call(request(world, { sessionId: u, mode: 'resume' }))).outcome;
    kinds.auth = (await world.agent({ FAKE_CLAUDE_FAIL: 'auth' }).call(request(world, { sessionId: u, mode: 'resume' }))).outcome;
    kinds.badFlag = (await world.agent({}, { extraArgs: ['--no-such-flag'] }).call(request(world, { sessionId: u, mode: 'resume' }))).outcome;
    kinds.server = (await world.agent({ FAKE_CLAUDE_FAIL: 'api-error' }).call(request(world, { sessionId: u, mode: 'resume' }))).outcome;
    expect(kinds).toMatchObject({
      inUse: { kind: 'sessionBusy', message: `Error: Session ID ${u} is already in use.` },
      noConversation: { kind: 'noConversation', message: expect.stringMatching(/^No conversation found with session ID: /) },
      rateLimited: { kind: 'rateLimited', status: 429, message: 'API Error: Request rejected (429) · rate_limit_error' },
      // After its own retries the CLI reports "Repeated 529 Overloaded errors" with api_error_status null.
      overloaded: { kind: 'rateLimited', status: 529, message: expect.stringMatching(/^API Error: Repeated 529 Overloaded/) },
      auth: { kind: 'fatal', message: 'the agent cannot reach the API: Failed to authenticate. API Error: 401 invalid x-api-key' },
      badFlag: { kind: 'fatal', message: "the agent refused to run: error: unknown option '--no-such-flag'" },
      // A server error is an answer with is_error: the validator and the DecisionEngine judge it.
      server: { kind: 'answer', result: { is_error: true, api_error_status: 500 } },
    });
    expect((kinds.inUse as { holder?: string }).holder).toBeUndefined();
  });

  it('a non-UUID session id is a fatal outcome with a clear message, and the CLI is never started', async () => {
    const world = fakeWorld();
    const call = await world.agent().call(request(world, { sessionId: 'my-session' }));
    expect(call.outcome).toEqual({ kind: 'fatal', message: expect.stringContaining('"my-session" is not a UUID') });
    expect(world.calls()).toEqual([]);
  });
});

describe('ClaudeCodeAgent with a broken binary', () => {
  it('a missing binary: preflight is a UserError, a call is a fatal outcome naming the fix', async () => {
    const world = fakeWorld();
    const agent = new ClaudeCodeAgent({ command: join(world.root, 'no-such-claude'), timeoutMs: 5000, locks: world.locks });
    expect(() => agent.preflight()).toThrow(UserError);
    expect(() => agent.preflight()).toThrow(/was not found — install Claude Code/);
    const call = await agent.call(request(world));
    expect(call.outcome).toEqual({ kind: 'fatal', message: expect.stringMatching(/^the agent binary was not found: .*no-such-claude — install Claude Code/) });
  });

  it('a binary that is not executable, or a directory', async () => {
    const world = fakeWorld();
    const file = join(world.root, 'claude');
    writeFileSync(file, '#!/bin/sh\necho hi\n');
    chmodSync(file, 0o644);
    const agent = new ClaudeCodeAgent({ command: file, timeoutMs: 5000, locks: world.locks });
    expect(() => agent.preflight()).toThrow(/is not executable — chmod \+x it/);
    expect((await agent.call(request(world))).outcome).toEqual({ kind: 'fatal', message: expect.stringMatching(/^the agent binary is not executable/) });
    const dir = join(world.root, 'claude-dir');
    mkdirSync(dir);
    expect(() => new ClaudeCodeAgent({ command: dir, timeoutMs: 5000 }).preflight()).toThrow(/is a directory/);
  });

  it('prints nothing, prints non-JSON, exits by a signal: classified, raw text kept, never thrown', async () => {
    const world = fakeWorld();
    const run = async (body: string) => (await new ClaudeCodeAgent({ command: script(world, `c${Math.random()}`, body), timeoutMs: 5000, locks: world.locks }).call(request(world)));
    const silent = await run('cat >/dev/null; exit 0');
    expect(silent.outcome).toEqual({ kind: 'malformed', message: 'the agent printed nothing on stdout', raw: '' });
    const html = await run('cat >/dev/null; echo "<html>502 Bad Gateway</html>"');
    expect(html.outcome).toEqual({ kind: 'malformed', message: 'no JSON result object in the output', raw: '<html>502 Bad Gateway</html>\n' });
    const broken = await run('cat >/dev/null; echo \'{"type":"result","subtype":"success"\'');
    expect(broken.outcome).toMatchObject({ kind: 'malformed', message: 'the output is not valid JSON', raw: expect.stringContaining('"subtype":"success"') });
    const killed = await run('cat >/dev/null; echo "segfault-ish" >&2; kill -SEGV $$');
    expect(killed.outcome).toEqual({ kind: 'crashed', message: 'the agent was killed by SIGSEGV: segfault-ish' });
    expect(killed.signal).toBe('SIGSEGV');
    const failed = await run('cat >/dev/null; echo "something broke" >&2; exit 3');
    expect(failed.outcome).toEqual({ kind: 'crashed', message: 'the agent exited with code 3: something broke' });
  });

  it('a flood of output is cut at maxOutputBytes: bounded memory, a malformed outcome, a bounded record', async () => {
    const world = fakeWorld();
    const agent = world.agent({ FAKE_CLAUDE_REPLIES: JSON.stringify([{ flood: 2 * 1024 * 1024 * 1024 }]) }, { maxOutputBytes: 4 * 1024 * 1024 });
    const rssBefore = process.memoryUsage().rss;
    const started = Date.now();
    let progressEvents = 0;
    const call = await agent.call(request(world, { onProgress: () => progressEvents++ }));
    const grew = process.memoryUsage().rss - rssBefore;
    expect(call.outcome).toMatchObject({ kind: 'malformed', message: 'the agent printed more output than allowed (4 MiB) and was stopped' });
    // 2 GiB were on offer; the call stopped after a few MiB, quickly, without holding them.
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(grew).toBeLessThan(200 * 1024 * 1024);
    expect(call.stdout.length).toBeLessThanOrEqual(KEPT_STDOUT_CHARS + 100);
    expect(progressEvents).toBe(1); // only `started`: the endless line was dropped, not buffered
  });

  it('a CLI that never exits is killed with its whole process tree at the timeout: no orphan survives', async () => {
    const world = fakeWorld();
    const agent = world.agent({ FAKE_CLAUDE_FAIL: 'hang' }, { timeoutMs: 800, killGraceMs: 200 });
    const started = Date.now();
    const call = await agent.call(request(world));
    expect(call.outcome).toEqual({ kind: 'timeout', message: 'the agent did not finish within 0.8s and was killed' });
    expect(Date.now() - started).toBeLessThan(3000);
    const calls = world.calls();
    const cli = calls.find((c) => c.outcome === 'hang')!;
    const child = calls.find((c) => c.outcome === 'hang-child')!;
    expect(child.childPid).toBeGreaterThan(0);
    await until(() => !isAlive(cli.pid) && !isAlive(child.childPid!), 3000, 'the CLI and its child to be gone');
    // The session's lock was released with the call.
    expect(world.locks.isFree(call.sessionId)).toBe(true);
  });

  it('a CLI (and its child) that ignores SIGTERM is SIGKILLed after the grace period: the call returns, no orphan', async () => {
    const world = fakeWorld();
    // Long enough for the CLI and its child to have set up their SIGTERM handlers, even on a busy machine.
    const timeoutMs = 1000;
    const killGraceMs = 300;
    const agent = world.agent({ FAKE_CLAUDE_IGNORE_SIGTERM: '1', FAKE_CLAUDE_REPLIES: JSON.stringify([{ hang: true }]) }, { timeoutMs, killGraceMs });
    const pending = agent.call(request(world));
    try {
      // Without the hard kill the call would never return: give up long after timeout + grace, with a reason.
      const call = await Promise.race([pending, new Promise<null>((r) => setTimeout(() => r(null), 15_000))]);
      expect(call, 'the call did not return: nothing killed the CLI that ignores SIGTERM').not.toBeNull();
      expect(call!.outcome).toEqual({ kind: 'timeout', message: 'the agent did not finish within 1.0s and was killed' });
      // SIGTERM came first and was ignored (by the CLI and by its child); SIGKILL is what ended the CLI.
      const calls = world.calls();
      const cli = calls.find((c) => c.outcome === 'hang')!;
      const child = calls.find((c) => c.outcome === 'hang-child')!;
      expect(calls.filter((c) => c.outcome === 'sigterm-ignored').map((c) => c.pid)).toEqual([cli.pid]);
      expect(calls.filter((c) => c.outcome === 'hang-child-sigterm-ignored').map((c) => c.childPid)).toEqual([child.childPid]);
      expect(call!.signal).toBe('SIGKILL');
      // ... and only after the grace period: the call lasted the timeout plus the grace (a lower bound a busy
      // machine meets; a few ms of slack because Node starts a timer from its loop's cached clock).
      expect(call!.durationMs).toBeGreaterThanOrEqual(timeoutMs + killGraceMs - 10);
      // Nothing of the tree survives the call.
      expect(isAlive(cli.pid)).toBe(false);
      await until(() => !isAlive(child.childPid!), 2000, 'the child that ignores SIGTERM to be gone');
      expect(world.locks.isFree(call!.sessionId)).toBe(true);
    } finally {
      // Should the hard kill be missing, do not leave processes that ignore SIGTERM behind.
      for (const c of world.calls()) for (const pid of [c.pid, c.childPid]) if (pid && isAlive(pid)) process.kill(pid, 'SIGKILL');
      await pending;
    }
  });

  it('an abort (run cancelled) stops the call at once and kills the tree', async () => {
    const world = fakeWorld();
    const agent = world.agent({ FAKE_CLAUDE_FAIL: 'hang' }, { timeoutMs: 30_000, killGraceMs: 200 });
    const controller = new AbortController();
    const pending = agent.call(request(world, { signal: controller.signal }));
    await until(() => world.calls().some((c) => c.outcome === 'hang-child'), 5000, 'the hanging CLI');
    controller.abort();
    const call = await pending;
    expect(call.outcome).toEqual({ kind: 'crashed', message: 'the call was aborted (run cancelled)' });
    const child = world.calls().find((c) => c.outcome === 'hang-child')!;
    await until(() => !isAlive(child.childPid!), 3000, 'the grandchild to be gone');
  });
});

describe('ClaudeCodeAgent and a call that outlived its Obra process', () => {
  it('kills the older call of the session (the CLI and its child) before starting its own, and reports it in the record and as progress', async () => {
    const world = fakeWorld();
    const sessionId = randomUUID();
    // The orphan: a call of a dead Obra process on this session, hanging with a child (reaper gone too).
    const orphan = execa(FAKE_CLAUDE, ['-p', '--output-format', 'stream-json', '--verbose', '--session-id', sessionId], {
      cwd: world.workdir,
      input: 'Write greet.js',
      env: world.env({ FAKE_CLAUDE_FAIL: 'hang' }),
      detached: true,
      reject: false,
    });
    try {
      await stopsTheOrphan(world, sessionId, orphan);
    } finally {
      // Should the agent not have killed it: the whole group (the CLI and its child).
      try {
        process.kill(-orphan.pid!, 'SIGKILL');
      } catch {
        // gone, as it should be
      }
    }
  });
});

/** Puts a stale lock naming `orphan`'s group on `sessionId`, makes a call on it, and checks what became of the orphan. */
async function stopsTheOrphan(world: ReturnType<typeof fakeWorld>, sessionId: string, orphan: ReturnType<typeof execa>): Promise<void> {
  await until(() => world.calls().some((c) => c.outcome === 'hang-child'), 10_000, 'the orphan to hang with a child');
  const grandchild = world.calls().find((c) => c.outcome === 'hang-child')!.childPid!;
  const dead = execa('node', ['-e', '0']);
  await dead;
  mkdirSync(world.locks.dir, { recursive: true });
  writeFileSync(join(world.locks.dir, `${sessionId}.lock`), JSON.stringify({ pid: dead.pid, start: null, since: '2026-12-07T10:00:00.000Z', child: orphan.pid, childStart: processStart(orphan.pid!) }));

  const progress: AgentProgress[] = [];
  const aliveAtStart: boolean[] = [];
  const agent = world.agent({ FAKE_CLAUDE_REPLIES: JSON.stringify(['Wrote greet.js\nSTATUS: DONE']) });
  const call = await agent.call(request(world, { sessionId, mode: 'resume', onProgress: (p) => {
    progress.push(p);
    if (p.kind === 'started') aliveAtStart.push(isAlive(orphan.pid!), isAlive(grandchild));
  } }));
  expect(call.outcome.kind).toBe('answer');
  expect(aliveAtStart).toEqual([false, false]);
  expect(call.stoppedEarlierCall).toEqual({ pgid: orphan.pid, ownerPid: dead.pid, since: '2026-12-07T10:00:00.000Z' });
  expect(progress[0]).toEqual({
    kind: 'earlierCallStopped',
    sessionId,
    pgid: orphan.pid,
    ownerPid: dead.pid,
    message: `session ${sessionId} still had a call running (process group ${orphan.pid}) from Obra process ${dead.pid}, which is gone: killed it before this call`,
  });
  expect((await orphan).signal).toBe('SIGKILL');
}
