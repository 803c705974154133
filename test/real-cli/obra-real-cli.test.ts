import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { startMockAnthropic, type MockAnthropic, type MockReply, type RecordedRequest } from '../../fixtures/mock-anthropic/server.js';
import { ClaudeCodeAgent } from '../../src/agents/claude-code-agent.js';
import { SessionLocks } from '../../src/agents/session-lock.js';
import { configSchema } from '../../src/config/schema.js';
import type { IterationRecord } from '../../src/core/types.js';
import { answerRun, claudeOptionsFromConfig, resumeRun, runTask, type EngineEvent } from '../../src/index.js';
import { RunStore } from '../../src/store/run-store.js';
import { realClaudeOrSkip, realEnv } from './real-claude.js';

/**
 * Obra end to end with the real Claude Code CLI (installed from npm by scripts/install-real-claude.mjs),
 * talking to fixtures/mock-anthropic instead of the Anthropic API: several iterations on one session through
 * `--resume`, a restart in the middle of a call, two tasks sharing one session — and never "already in use".
 */

const real = await realClaudeOrSkip();

const CONTINUE = (n: number) => `Step ${n}: wrote the code for this part and checked it by hand.\nNext: the following step.\nSTATUS: CONTINUE`;
const DONE = 'Reviewed everything; the function and its documentation match and the task is complete.\nSTATUS: DONE';

let mock: MockAnthropic;
/** Replies per session: the nth request of a session gets the nth reply (the last repeats). */
const scripts = new Map<string, MockReply[]>();
const hangNext = new Set<string>();

beforeAll(async () => {
  if (!real.claude) return;
  mock = await startMockAnthropic();
  mock.script((request: RecordedRequest) => {
    const session = request.sessionHeader ?? '';
    if (hangNext.delete(session)) return { hang: true };
    const replies = scripts.get(session) ?? [DONE];
    const n = mock.requests.filter((r) => r.sessionHeader === session).length;
    return replies[Math.min(n - 1, replies.length - 1)]!;
  });
});
afterAll(async () => {
  await mock?.close();
});

function setup(extraEnv: Record<string, string> = {}) {
  const root = mkdtempSync(join(tmpdir(), 'obra-real-cli-'));
  const workdir = join(root, 'project');
  mkdirSync(workdir, { recursive: true });
  const locks = new SessionLocks(join(root, 'locks'));
  // An empty value unsets a variable (ANTHROPIC_API_KEY: '' makes the CLI a claude.ai subscriber with the OAuth token).
  const env = Object.fromEntries(Object.entries(realEnv(join(root, 'home'), mock.url, extraEnv)).filter(([, value]) => value !== ''));
  const agent = new ClaudeCodeAgent({ command: real.claude!.bin, timeoutMs: 60_000, env, locks, killGraceMs: 500 });
  /** The agent a user gets from a config: Obra's defaults (permissions, watchdog) with the real binary. */
  const agentFrom = (config: ReturnType<typeof configSchema.parse>) =>
    new ClaudeCodeAgent({ ...claudeOptionsFromConfig(config), command: real.claude!.bin, timeoutMs: 60_000, env, locks, killGraceMs: 500 });
  return { root, workdir, storeDir: join(root, 'store'), agent, agentFrom };
}

function records(storeDir: string, runId: string): IterationRecord[] {
  const handle = RunStore.open(storeDir, { create: false }).openRun(runId);
  try {
    return handle.readIterations();
  } finally {
    handle.close();
  }
}

const sessionFlags = (r: IterationRecord) => r.agent!.argv.filter((a) => ['--session-id', '--resume', '--fork-session'].includes(a) || /^[0-9a-f-]{36}$/.test(a)).join(' ');

describe.skipIf(!real.claude)(`Obra with the real Claude Code CLI ${real.claude?.version ?? `(skipped: ${real.skip})`}`, () => {
  it('runs several iterations on one session via --resume: one conversation, no session-in-use error', { timeout: 120_000 }, async () => {
    const s = setup();
    const u = randomUUID();
    scripts.set(u, [CONTINUE(1), CONTINUE(2), DONE]);
    const progress: string[] = [];
    const config = configSchema.parse({ agent: { local: { session_id: u } } });
    const result = await runTask({
      task: 'Add a greet(name) function and document it',
      workdir: s.workdir,
      storeDir: s.storeDir,
      config,
      agent: s.agent,
      onEvent: (e: EngineEvent) => {
        if (e.type === 'agent-progress' && e.progress.kind === 'text') progress.push(e.progress.text);
      },
    });
    expect(result.status).toBe('done');
    const its = records(s.storeDir, result.runId);
    expect(its.map(sessionFlags)).toEqual([`--session-id ${u}`, `--resume ${u}`, `--resume ${u}`]);
    // Zero session-in-use: every iteration made exactly one call and never waited.
    expect(its.map((r) => [r.attempts, r.retryDelaysMs.length, r.agent!.outcome.kind])).toEqual([[1, 0, 'answer'], [1, 0, 'answer'], [1, 0, 'answer']]);
    expect(its.every((r) => r.agent!.outcome.kind === 'answer' && r.agent!.outcome.result.session_id === u)).toBe(true);
    // The API saw one growing conversation: each request carries the earlier prompts and answers.
    const requests = mock.requests.filter((r) => r.sessionHeader === u);
    expect(requests).toHaveLength(3);
    const lengths = requests.map((r) => r.messages.length);
    expect(lengths[1]!).toBeGreaterThan(lengths[0]!);
    expect(lengths[2]!).toBeGreaterThan(lengths[1]!);
    const last = requests[2]!.messages.map((m) => m.text).join('\n');
    expect(last).toContain('Step 1: wrote the code');
    expect(last).toContain('Step 2: wrote the code');
    // stream-json was parsed as it came: the answers flowed out as progress.
    expect(progress).toEqual([CONTINUE(1), CONTINUE(2), DONE]);
  });

  it('a run killed in the middle of its first call resumes the same conversation with --resume', { timeout: 120_000 }, async () => {
    const s = setup();
    const u = randomUUID();
    scripts.set(u, [DONE]);
    hangNext.add(u); // the first request never gets an answer
    const controller = new AbortController();
    const config = configSchema.parse({ agent: { local: { session_id: u } } });
    const running = runTask({ task: 'Add a greet(name) function', workdir: s.workdir, storeDir: s.storeDir, config, agent: s.agent, signal: controller.signal });
    const deadline = Date.now() + 30_000;
    while (!mock.requests.some((r) => r.sessionHeader === u) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    controller.abort();
    const interrupted = await running;
    expect(interrupted.status).toBe('interrupted');

    const resumed = await resumeRun(interrupted.runId, { storeDir: s.storeDir, agent: s.agent });
    expect(resumed.status).toBe('done');
    const its = records(s.storeDir, interrupted.runId);
    // The killed first call had already created the session: the re-issued call resumes it.
    expect(its.map(sessionFlags)).toEqual([`--resume ${u}`]);
    expect(resumed.sessionId).toBe(u);
    const requests = mock.requests.filter((r) => r.sessionHeader === u);
    expect(requests).toHaveLength(2);
    // The resumed request carries the interrupted prompt too: the conversation survived the kill.
    expect(requests[1]!.messages.length).toBeGreaterThan(requests[0]!.messages.length);
  });

  it('two tasks on one session never have two calls in flight: the conversation stays one line', { timeout: 120_000 }, async () => {
    const s = setup();
    const u = randomUUID();
    scripts.set(u, [CONTINUE(1), CONTINUE(2), CONTINUE(3), CONTINUE(4)]);
    const config = configSchema.parse({ agent: { local: { session_id: u } }, task: { max_iterations: 2 } });
    const [a, b] = await Promise.all([
      runTask({ task: 'Task A', workdir: s.workdir, storeDir: s.storeDir, config, agent: s.agent }),
      runTask({ task: 'Task B', workdir: s.workdir, storeDir: s.storeDir, config, agent: s.agent }),
    ]);
    expect([a.status, b.status]).toEqual(['max_iterations', 'max_iterations']);
    const all = [...records(s.storeDir, a.runId), ...records(s.storeDir, b.runId)];
    // The CLI never said "already in use"; the waits were for Obra's own lock.
    expect(all.every((r) => r.agent!.outcome.kind === 'answer')).toBe(true);
    expect(all.map((r) => r.agent!.stderr).join('')).not.toMatch(/already in use/);
    // Four requests, each one seeing everything before it: no branch of the conversation.
    const requests = mock.requests.filter((r) => r.sessionHeader === u);
    expect(requests).toHaveLength(4);
    for (let i = 1; i < requests.length; i++) expect(requests[i]!.messages.length).toBeGreaterThan(requests[i - 1]!.messages.length);
    expect(requests[3]!.messages.map((m) => m.text).join('\n')).toContain('Step 3: wrote the code');
  });

  it('a usage limit whose reset is 20 s away parks the task, then it finishes done on the same session', { timeout: 120_000 }, async () => {
    // A claude.ai subscriber (OAuth token, no API key): the CLI reports the limit with its reset time.
    const s = setup({ CLAUDE_CODE_OAUTH_TOKEN: 'dummy-oauth-token', ANTHROPIC_API_KEY: '' });
    const u = randomUUID();
    const resetsAt = Math.floor(Date.now() / 1000) + 20;
    const limited: MockReply = {
      error: 429,
      errorMessage: 'usage limit',
      headers: { 'anthropic-ratelimit-unified-status': 'rejected', 'anthropic-ratelimit-unified-reset': String(resetsAt), 'anthropic-ratelimit-unified-representative-claim': 'five_hour' },
    };
    scripts.set(u, [limited, DONE]);
    const config = configSchema.parse({ agent: { local: { session_id: u, usage_limit_margin: 1 } } });
    const events: EngineEvent[] = [];
    const result = await runTask({ task: 'Add a greet(name) function', workdir: s.workdir, storeDir: s.storeDir, config, agent: s.agentFrom(config), onEvent: (e) => events.push(e) });

    expect(result.status).toBe('done');
    const limit = events.find((e): e is Extract<EngineEvent, { type: 'usage-limit' }> => e.type === 'usage-limit')!;
    expect(limit).toMatchObject({ limitType: 'five_hour', resetsAt: resetsAt * 1000, dueAt: resetsAt * 1000 + 1000 });
    expect(limit.message).toMatch(/^You've hit your session limit · resets/);
    const requests = mock.requests.filter((r) => r.sessionHeader === u);
    expect(requests).toHaveLength(2);
    // Not before the reset + margin, and not much later either.
    expect(requests[1]!.at).toBeGreaterThanOrEqual(resetsAt * 1000 + 1000);
    expect(requests[1]!.at).toBeLessThan(resetsAt * 1000 + 15_000);
    // The same conversation: the refused call had created the session; the next one resumed it.
    expect(requests[1]!.messages.length).toBeGreaterThan(requests[0]!.messages.length);
    const its = records(s.storeDir, result.runId);
    expect(its.map(sessionFlags)).toEqual([`--resume ${u}`]);
    expect(its.map((r) => r.index)).toEqual([1]);
  });

  it('permissions with Obra\'s defaults: a Write in the working directory is allowed, one outside is refused and asked about', { timeout: 120_000 }, async () => {
    const s = setup();
    const config = configSchema.parse({});
    const inside = randomUUID();
    scripts.set(inside, [{ toolUse: { name: 'Write', input: { file_path: join(s.workdir, 'notes.txt'), content: 'hello\n' } } }, 'Wrote notes.txt with the greeting; the task is complete.\nSTATUS: DONE']);
    const allowed = await runTask({ task: 'Write notes.txt', workdir: s.workdir, storeDir: s.storeDir, config: configSchema.parse({ agent: { local: { session_id: inside } } }), agent: s.agentFrom(config) });
    expect(allowed.status).toBe('done');
    expect(readFileSync(join(s.workdir, 'notes.txt'), 'utf8')).toBe('hello\n');
    expect(records(s.storeDir, allowed.runId)[0]!.agent!.argv).toEqual(expect.arrayContaining(['--permission-mode', 'acceptEdits']));

    const outside = randomUUID();
    const target = join(s.root, 'outside.txt');
    scripts.set(outside, [{ toolUse: { name: 'Write', input: { file_path: target, content: 'x\n' } } }, 'I could not write outside.txt: permission was not granted.\nSTATUS: CONTINUE']);
    const refused = await runTask({ task: 'Write outside.txt', workdir: s.workdir, storeDir: s.storeDir, config: configSchema.parse({ agent: { local: { session_id: outside } } }), agent: s.agentFrom(config) });
    expect(refused.status).toBe('escalated');
    expect(refused.question).toContain(`the agent was refused 1 tool use it asked for: Write ${target} — allow it with \`obra answer ${refused.runId} --allow Write\``);
    expect(existsSync(target)).toBe(false);
    expect(records(s.storeDir, refused.runId)[0]!.permissionDenials).toEqual([{ tool: 'Write', input: target, rule: 'Write' }]);
  });

  it('a refused Bash command, granted with `obra answer --allow`, is then run in the same session', { timeout: 120_000 }, async () => {
    const s = setup();
    const u = randomUUID();
    const command = `node -e "require('fs').writeFileSync('granted.txt', 'ok')"`;
    const bash: MockReply = { toolUse: { name: 'Bash', input: { command, description: 'Write granted.txt' } } };
    scripts.set(u, [bash, 'I need permission to run a node command.\nSTATUS: CONTINUE', bash, 'Ran the node command; granted.txt exists and the task is complete.\nSTATUS: DONE']);
    const config = configSchema.parse({ agent: { local: { session_id: u } } });
    const escalated = await runTask({ task: 'Write granted.txt with node', workdir: s.workdir, storeDir: s.storeDir, config, agent: s.agentFrom(config) });
    expect(escalated.status).toBe('escalated');
    expect(escalated.iterations[0]).toMatchObject({ decisionRule: 'permissionDenied', permissionDenials: [{ tool: 'Bash', input: command, rule: `Bash(${command})` }] });
    expect(existsSync(join(s.workdir, 'granted.txt'))).toBe(false);

    const done = await answerRun(escalated.runId, '', { storeDir: s.storeDir, agent: s.agentFrom(config), allow: [`Bash(${command})`] });
    expect(done.status).toBe('done');
    expect(done.granted).toEqual([`Bash(${command})`]);
    expect(readFileSync(join(s.workdir, 'granted.txt'), 'utf8')).toBe('ok');
    const its = records(s.storeDir, escalated.runId);
    expect(its.map(sessionFlags)).toEqual([`--session-id ${u}`, `--resume ${u}`]);
    expect(its[1]!.agent!.argv).toEqual(expect.arrayContaining(['--allowedTools', `Bash(${command})`]));
    expect(its[1]!.permissionDenials).toEqual([]);
  });
});
