import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expect } from 'vitest';
import { startMockGemini, type MockGemini, type MockGeminiReply } from '../../fixtures/mock-gemini/server.js';
import { GeminiAgent } from '../../src/agents/gemini/gemini-agent.js';
import { SessionLocks } from '../../src/agents/session-lock.js';
import type { AgentCallRecord } from '../../src/core/types.js';
import { realAgentCliOrSkip } from './real-agent-cli.js';
import { commonShapeOf, contractSuites, driveCalls, fakeReply, type CommonShape, type Scenario } from './same-shapes.js';

/**
 * Gemini CLI's contract: the same scenarios through GeminiAgent against fixtures/fake-gemini and the real `gemini`
 * binary, pointed at fixtures/mock-gemini (the model pinned, so no router call; `general.maxAttempts: 1`, so a 429
 * or 500 fails in seconds instead of after four minutes of retries). The shapes must be equal.
 */

const FAKE = resolve(import.meta.dirname, '../../fixtures/fake-gemini');
const real = await realAgentCliOrSkip('gemini');

type Api = { text: string } | { write: string; text: string } | { shell: string; text: string } | { error: 429 | 500 } | { hang: true };
const standIn = (api: Api): MockGeminiReply =>
  'write' in api ? { write: { path: api.write, content: 'written' }, text: api.text } : 'shell' in api ? { shell: api.shell, text: api.text } : api;

interface Shape extends CommonShape {
  isError?: boolean;
  apiStatus?: number | null;
  answer?: string;
}

function shapeOf(record: AgentCallRecord, workdir: string): Shape {
  const result = record.outcome.kind === 'answer' ? record.outcome.result : null;
  return {
    ...commonShapeOf(record, workdir),
    ...(result ? { isError: result.is_error, apiStatus: result.api_error_status ?? null, answer: result.is_error ? undefined : result.result.trim() } : {}),
  };
}

const SESSION = '6f1c0000-0000-4000-8000-0000000000aa';
const idleFor = (apis: Api[]) => (apis.some((a) => 'hang' in a) ? 3_000 : 60_000);

async function drive(agentOf: (root: string, apis: Api[]) => GeminiAgent, apis: Api[], prompts: string[]) {
  const { records, workdir } = await driveCalls('gemini', SESSION, (root) => agentOf(root, apis), prompts);
  return records.map((r) => shapeOf(r, workdir));
}

const fakeAgent = (root: string, apis: Api[]) =>
  new GeminiAgent({ command: FAKE, timeoutMs: 30_000, idleTimeoutMs: idleFor(apis), killGraceMs: 300, locks: new SessionLocks(join(root, 'locks')), env: { HOME: root, FAKE_GEMINI_REPLIES: JSON.stringify(apis.map(fakeReply)) } });

function realAgent(bin: string, mock: MockGemini) {
  return (root: string, apis: Api[]) => {
    mock.script(apis.map(standIn));
    mkdirSync(join(root, '.gemini'));
    writeFileSync(join(root, '.gemini/settings.json'), JSON.stringify({ security: { auth: { selectedType: 'gemini-api-key' } }, general: { maxAttempts: 1 } }));
    return new GeminiAgent({
      command: bin,
      timeoutMs: 90_000,
      idleTimeoutMs: idleFor(apis),
      killGraceMs: 300,
      model: 'gemini-2.5-flash',
      locks: new SessionLocks(join(root, 'locks')),
      env: { HOME: root, GOOGLE_GEMINI_BASE_URL: mock.url, GEMINI_API_KEY: 'dummy' },
    });
  };
}

const SCENARIOS: Scenario<Api, Shape>[] = [
  { name: 'a plain answer', apis: [{ text: 'Plain answer.\nSTATUS: DONE' }], prompts: ['Say something.'], expect: ([s]) => expect(s).toEqual({ outcome: 'answer', isError: false, apiStatus: null, answer: 'Plain answer.\nSTATUS: DONE', exitCode: 0, denials: [], files: [], sessionId: SESSION }) },
  { name: 'a file written in the working directory', apis: [{ write: 'written.txt', text: 'Wrote it.\nSTATUS: DONE' }], prompts: ['Write written.txt.'], expect: ([s]) => expect(s).toMatchObject({ outcome: 'answer', exitCode: 0, files: ['written.txt: written'], answer: 'Wrote it.\nSTATUS: DONE' }) },
  {
    name: 'a second call resumes the named session (-r)',
    apis: [{ text: 'Remembered.\nSTATUS: CONTINUE' }, { text: 'It was PINEAPPLE.\nSTATUS: DONE' }],
    prompts: ['Remember the word PINEAPPLE.', 'Which word?'],
    expect: (shapes) => expect(shapes.map((s) => [s.outcome, s.sessionId, s.answer])).toEqual([['answer', SESSION, 'Remembered.\nSTATUS: CONTINUE'], ['answer', SESSION, 'It was PINEAPPLE.\nSTATUS: DONE']]),
  },
  {
    name: 'a shell command is refused under the default auto_edit: not registered, the turn goes on, one denial',
    apis: [{ shell: 'touch made-by-shell.txt', text: 'Tried.\nSTATUS: DONE' }],
    prompts: ['Run touch.'],
    expect: ([s]) => expect(s).toMatchObject({ outcome: 'answer', exitCode: 0, files: [], denials: ['run_shell_command touch made-by-shell.txt → Bash'] }),
  },
  { name: '429: exit 173, rate limited', apis: [{ error: 429 }], prompts: ['Hello.'], expect: ([s]) => expect(s).toMatchObject({ outcome: 'rateLimited', exitCode: 173 }) },
  { name: '500: exit 244, an API error answer', apis: [{ error: 500 }], prompts: ['Hello.'], expect: ([s]) => expect(s).toMatchObject({ outcome: 'answer', isError: true, apiStatus: 500, exitCode: 244 }) },
  { name: 'a hang: killed by the idle watchdog (stalled)', apis: [{ hang: true }], prompts: ['Hello.'], expect: ([s]) => expect(s).toMatchObject({ outcome: 'stalled', exitCode: 'killed' }) },
];

contractSuites({
  title: 'Gemini CLI',
  cli: 'gemini',
  real,
  startMock: () => startMockGemini(),
  scenarios: SCENARIOS,
  fake: (scenario) => drive(fakeAgent, scenario.apis, scenario.prompts),
  realShapes: (bin, mock: MockGemini, scenario) => drive(realAgent(bin, mock), scenario.apis, scenario.prompts),
});
