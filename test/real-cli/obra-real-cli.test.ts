import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockAnthropic, type MockAnthropic, type RecordedRequest } from '../../fixtures/mock-anthropic/server.js';
import { ClaudeCodeAgent } from '../../src/agents/claude-code-agent.js';
import { SessionLocks } from '../../src/agents/session-lock.js';
import { configSchema } from '../../src/config/schema.js';
import type { IterationRecord } from '../../src/core/types.js';
import { resumeRun, runTask, type EngineEvent } from '../../src/engine/runner.js';
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
const scripts = new Map<string, string[]>();
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

function setup() {
  const root = mkdtempSync(join(tmpdir(), 'obra-real-cli-'));
  const workdir = join(root, 'project');
  mkdirSync(workdir, { recursive: true });
  const locks = new SessionLocks(join(root, 'locks'));
  const agent = new ClaudeCodeAgent({ command: real.claude!.bin, timeoutMs: 60_000, env: realEnv(join(root, 'home'), mock.url), locks, killGraceMs: 500 });
  return { root, workdir, storeDir: join(root, 'store'), agent };
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
});
