import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockOpenAI, type MockOpenAI, type MockOpenAIReply } from '../../fixtures/mock-openai/server.js';
import type { AgentCallRequest } from '../../src/agents/agent.js';
import { CodexAgent } from '../../src/agents/codex/codex-agent.js';
import { rolloutOf } from '../../src/agents/codex/refusals.js';
import { SessionLocks } from '../../src/agents/session-lock.js';
import type { AgentCallRecord } from '../../src/core/types.js';
import { realAgentCliOrSkip } from './real-agent-cli.js';

/**
 * Codex's contract: the same scenarios through CodexAgent against fixtures/fake-codex and the real `codex` binary
 * (pointed at fixtures/mock-openai, the Responses API stand-in, retries off so failures are quick). Each scenario
 * yields a shape — the outcome's kind, the exit code, the files on disk, the denials, whether the session carried
 * over — and the two shapes must be equal; each also states the contract, so the fake is held to it even where
 * the real CLI cannot run.
 */

const FAKE = resolve(import.meta.dirname, '../../fixtures/fake-codex');
const real = await realAgentCliOrSkip('codex');

/** One scenario's "API" behaviour, in the real stand-in's terms; the fake is scripted the same. */
type Api = { text: string } | { write: string; text: string } | { error: 429 | 500 } | { hang: true };

const standIn = (api: Api): MockOpenAIReply =>
  'write' in api ? { write: { path: api.write, content: 'written' }, text: api.text } : 'error' in api ? { error: api.error, retryAfterS: 0 } : 'hang' in api ? { hang: true } : api.text;
const fakeReply = (api: Api): unknown =>
  'write' in api ? { files: { [api.write]: 'written' }, text: api.text } : 'error' in api ? { error: api.error, retries: 0 } : 'hang' in api ? { hang: true } : api.text;

interface Shape {
  outcome: string;
  isError?: boolean;
  exitCode: number | null;
  answer?: string;
  denials: string[];
  files: string[];
  hasTokens: boolean;
}

interface Target {
  name: string;
  /** Runs the scenario's calls, one per API behaviour, the later ones resuming the first's session. */
  calls(apis: Api[], prompts: string[]): Promise<{ records: AgentCallRecord[]; workdir: string; root: string; carried: string[][] }>;
}

function shapeOf(record: AgentCallRecord, workdir: string, root: string): Shape {
  const result = record.outcome.kind === 'answer' ? record.outcome.result : null;
  return {
    outcome: record.outcome.kind,
    ...(result ? { isError: result.is_error, answer: result.is_error ? undefined : result.result } : {}),
    exitCode: record.exitCode,
    denials: (record.permissionDenials ?? []).map((d) => `${d.tool} ${d.input} → ${d.rule}`),
    files: ['written.txt', '../outside.txt'].filter((f) => existsSync(join(workdir, f))).map((f) => `${f}: ${readFileSync(join(workdir, f), 'utf8').trim()}`),
    hasTokens: Boolean(record.tokens && record.tokens.inputTokens > 0),
  };
}

function scratch() {
  const root = mkdtempSync(join(tmpdir(), 'obra-codex-contract-'));
  const workdir = join(root, 'work');
  const home = join(root, 'codex-home');
  mkdirSync(workdir);
  mkdirSync(home);
  return { root, workdir, home };
}

const request = (workdir: string, prompt: string, previous: AgentCallRecord | undefined): AgentCallRequest => ({
  runId: 'contract',
  index: 1,
  attempt: 1,
  prompt,
  sessionId: previous?.sessionId ?? null,
  mode: previous ? 'resume' : 'create',
  workdir,
});

/** A short watchdog only where silence is the scenario: a single 5xx may be retried silently for a second or two. */
const idleFor = (apis: Api[]) => (apis.some((a) => 'hang' in a) ? 1_500 : 15_000);

const fakeTarget: Target = {
  name: 'fake-codex',
  async calls(apis, prompts) {
    const { root, workdir, home } = scratch();
    const agent = new CodexAgent({ command: FAKE, timeoutMs: 20_000, idleTimeoutMs: idleFor(apis), home, killGraceMs: 300, locks: new SessionLocks(join(root, 'locks')), env: { FAKE_CODEX_REPLIES: JSON.stringify(apis.map(fakeReply)) } });
    const records: AgentCallRecord[] = [];
    for (const prompt of prompts) records.push(await agent.call(request(workdir, prompt, records[0])));
    // The fake keeps the conversation in its rollout: what a resumed turn would send.
    const rollout = records[0] ? readFileSync(rolloutOf(home, records[0].sessionId)!, 'utf8') : '';
    const carried = [prompts.filter((p) => rollout.includes(p)).map((p) => `user: ${p}`)];
    return { records, workdir, root, carried };
  },
};

function realTarget(bin: string, mock: MockOpenAI): Target {
  return {
    name: `codex ${real.version}`,
    async calls(apis, prompts) {
      const { root, workdir, home } = scratch();
      mock.script(apis.map(standIn));
      const provider = `model_providers.mock={name="mock",base_url="${mock.url}",wire_api="responses",env_key="FAKE_KEY",request_max_retries=0,stream_max_retries=0}`;
      const agent = new CodexAgent({
        command: bin,
        timeoutMs: 60_000,
        idleTimeoutMs: idleFor(apis),
        home,
        killGraceMs: 300,
        locks: new SessionLocks(join(root, 'locks')),
        env: { HOME: root, FAKE_KEY: 'dummy' },
        model: 'gpt-5.5',
        extraArgs: ['-c', 'analytics.enabled=false', '-c', 'model_provider=mock', '-c', provider],
      });
      const before = mock.requests.length;
      const records: AgentCallRecord[] = [];
      for (const prompt of prompts) records.push(await agent.call(request(workdir, prompt, records[0])));
      const carried = mock.requests.slice(before).map((r) => r.carried.filter((c) => prompts.some((p) => c === `user: ${p}`)));
      return { records, workdir, root, carried };
    },
  };
}

/** The scenarios, each with what the contract says about its shape. */
const SCENARIOS: { name: string; apis: Api[]; prompts: string[]; expect: (shapes: Shape[], carried: string[][], records: AgentCallRecord[]) => void }[] = [
  {
    name: 'a plain answer',
    apis: [{ text: 'Plain answer.\nSTATUS: DONE' }],
    prompts: ['Say something.'],
    expect: ([s]) => expect(s).toEqual({ outcome: 'answer', isError: false, answer: 'Plain answer.\nSTATUS: DONE', exitCode: 0, denials: [], files: [], hasTokens: true }),
  },
  {
    name: 'a file written in the working directory',
    apis: [{ write: 'written.txt', text: 'Wrote it.\nSTATUS: DONE' }],
    prompts: ['Write written.txt.'],
    expect: ([s]) => expect(s).toMatchObject({ outcome: 'answer', exitCode: 0, denials: [], files: ['written.txt: written'] }),
  },
  {
    name: 'a second call resumes the same thread, with its history',
    apis: [{ text: 'Remembered.\nSTATUS: CONTINUE' }, { text: 'It was PINEAPPLE.\nSTATUS: DONE' }],
    prompts: ['Remember the word PINEAPPLE.', 'Which word?'],
    expect: (shapes, carried, records) => {
      expect(shapes.map((s) => s.outcome)).toEqual(['answer', 'answer']);
      expect(records[1]!.sessionId).toBe(records[0]!.sessionId);
      expect(records[1]!.argv.slice(-3)).toEqual(['resume', records[0]!.sessionId, '-']);
      expect(carried.at(-1)).toEqual(['user: Remember the word PINEAPPLE.', 'user: Which word?']);
      // Usage is the thread's running total: the second call's own share is less than that total.
      expect(records[1]!.tokens!.inputTokens).toBeGreaterThan(0);
    },
  },
  {
    name: 'an edit outside the working directory is refused under the default sandbox: no event, exit 0, one denial',
    apis: [{ write: '../outside.txt', text: 'Tried.\nSTATUS: DONE' }],
    prompts: ['Write ../outside.txt.'],
    expect: ([s]) => expect(s).toMatchObject({ outcome: 'answer', exitCode: 0, files: [], denials: ['apply_patch ../outside.txt → Sandbox(danger-full-access)'] }),
  },
  {
    name: '429',
    apis: [{ error: 429 }],
    prompts: ['Hello.'],
    expect: ([s]) => expect(s).toMatchObject({ outcome: 'rateLimited', exitCode: 1 }),
  },
  {
    name: '500: an API error answer (is_error), exit 1',
    apis: [{ error: 500 }],
    prompts: ['Hello.'],
    expect: ([s]) => expect(s).toMatchObject({ outcome: 'answer', isError: true, exitCode: 1 }),
  },
  {
    name: 'a hang: silence until the idle watchdog, which kills the call (stalled)',
    apis: [{ hang: true }],
    prompts: ['Hello.'],
    expect: ([s]) => expect(s).toMatchObject({ outcome: 'stalled', exitCode: null }),
  },
];

let mock: MockOpenAI | null = null;
beforeAll(async () => {
  if (real.bin) mock = await startMockOpenAI();
});
afterAll(async () => {
  await mock?.close();
});

describe('the Codex contract: fixtures/fake-codex', () => {
  for (const scenario of SCENARIOS) {
    it(scenario.name, async () => {
      const { records, workdir, carried } = await fakeTarget.calls(scenario.apis, scenario.prompts);
      scenario.expect(records.map((r) => shapeOf(r, workdir, '')), carried, records);
    });
  }
});

describe.skipIf(!real.bin)(`the Codex contract: the real codex ${real.version}, the same shapes as the fake`, () => {
  for (const scenario of SCENARIOS) {
    it(scenario.name, async () => {
      const target = realTarget(real.bin!, mock!);
      const got = await target.calls(scenario.apis, scenario.prompts);
      const shapes = got.records.map((r) => shapeOf(r, got.workdir, got.root));
      scenario.expect(shapes, got.carried, got.records);
      const fake = await fakeTarget.calls(scenario.apis, scenario.prompts);
      const normalize = (s: Shape) => ({ ...s, answer: s.answer?.trim() });
      expect(shapes.map(normalize)).toEqual(fake.records.map((r) => normalize(shapeOf(r, fake.workdir, fake.root))));
    }, 60_000);
  }
});
