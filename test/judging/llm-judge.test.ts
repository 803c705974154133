import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Ollama } from 'ollama';
// The stub is plain JavaScript so that it also runs on its own: `node fixtures/ollama-stub/server.mjs`.
// @ts-expect-error no type declarations for the fixture
import { startOllamaStub } from '../../fixtures/ollama-stub/server.mjs';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import { runTask } from '../../src/index.js';
import { JUDGE_FORMAT, LlmJudge, RUBRIC } from '../../src/scoring/llm-judge.js';
import { QualityController } from '../../src/scoring/quality-controller.js';
import { answerCall, check, harness, task, verdict } from './helpers.js';

type Stub = { url: string; requests: { method: string; path: string; body: any }[]; close: () => Promise<void> };
const stubs: Stub[] = [];
async function stub(options: Record<string, unknown> = {}): Promise<Stub> {
  const s = (await startOllamaStub(options)) as Stub;
  stubs.push(s);
  return s;
}
afterEach(async () => {
  await Promise.all(stubs.splice(0).map((s) => s.close()));
});

const judgeFor = (host: string, extra: Record<string, unknown> = {}) => new LlmJudge({ model: 'stub-judge', host, timeout: 2, max_answer_chars: 6000, ...extra });
const good = { correctness: 0.9, completeness: 0.8, verification: 1, score: 0.9, summary: 'Does what was asked; tests pass.' };
const request = { task: 'Add greet(name)', answer: 'Added greet(name).\nSTATUS: DONE', checks: [check('npm test', 0)] };

describe('the Ollama stub speaks the API the ollama client uses', () => {
  it('answers /api/chat and /api/generate, streaming or not, and lists models', async () => {
    const s = await stub({ replies: [{ content: good }] });
    const client = new Ollama({ host: s.url });
    const chat = await client.chat({ model: 'stub-judge', messages: [{ role: 'user', content: 'grade' }], format: 'json' });
    expect(JSON.parse(chat.message.content)).toEqual(good);
    const generated = await client.generate({ model: 'stub-judge', prompt: 'grade', format: 'json' });
    expect(JSON.parse(generated.response!)).toEqual(good);
    let streamed = '';
    for await (const part of await client.chat({ model: 'stub-judge', messages: [{ role: 'user', content: 'grade' }], stream: true })) streamed += part.message.content;
    expect(JSON.parse(streamed)).toEqual(good);
    expect((await client.list()).models.map((m) => m.name)).toEqual(['stub-judge']);
  });
});

describe('LlmJudge', () => {
  it('sends the rubric, the task, the answer and the check results with a JSON-schema format, and returns the validated verdict', async () => {
    const s = await stub({ replies: [{ content: good }] });
    const outcome = await judgeFor(s.url).judge(request);
    expect(outcome).toMatchObject({ ok: true, verdict: good, model: 'stub-judge' });
    const sent = s.requests.find((r) => r.path === '/api/chat')!.body;
    expect(sent.model).toBe('stub-judge');
    expect(sent.stream).toBe(false);
    expect(sent.format).toEqual(JUDGE_FORMAT);
    expect(sent.messages[0]).toEqual({ role: 'system', content: RUBRIC });
    expect(sent.messages[1].content).toContain('## Task\nAdd greet(name)');
    expect(sent.messages[1].content).toContain('STATUS: DONE');
    expect(sent.messages[1].content).toContain('- `npm test`: passed');
  });

  it('cuts a long answer to max_answer_chars', async () => {
    const s = await stub({ replies: [{ content: good }] });
    await judgeFor(s.url, { max_answer_chars: 200 }).judge({ ...request, answer: 'x'.repeat(5000) });
    const prompt = s.requests.find((r) => r.path === '/api/chat')!.body.messages[1].content as string;
    expect(prompt).toContain(`${'x'.repeat(200)}\n…(cut)`);
    expect(prompt).not.toContain('x'.repeat(201));
  });

  const bad: [string, () => Promise<string>, RegExp][] = [
    ['non-JSON content', async () => (await stub({ replies: ['I think it is pretty good, 8/10'] })).url, /answered something that is not JSON \("I think it is pretty good, 8\/10"\)/],
    ['an out-of-range score', async () => (await stub({ replies: [{ content: { ...good, score: 7 } }] })).url, /does not fit the rubric \(score: Too big: expected number to be <=1 — got 7\)/],
    ['missing fields', async () => (await stub({ replies: [{ content: { score: 0.5 } }] })).url, /does not fit the rubric \(correctness: .*expected number/],
    ['an HTTP error', async () => (await stub({ replies: [{ status: 500, error: 'out of memory' }] })).url, /answered HTTP 500: out of memory/],
    ['an unknown model', async () => (await stub({ models: ['llama3.2'] })).url, /answered HTTP 404: model "stub-judge" not found/],
    ['a non-JSON error page', async () => (await stub({ replies: [{ status: 502, raw: '<html>Bad Gateway</html>' }] })).url, /answered HTTP 502: <html>Bad Gateway<\/html>/],
    ['a body that is not JSON at all', async () => (await stub({ replies: [{ raw: 'not json' }] })).url, /not JSON/],
    ['an unreachable host', async () => `http://127.0.0.1:${await freePort()}`, /is unreachable \(ECONNREFUSED\)/],
  ];

  it.each(bad)('falls back with a warning on %s', async (_label, host, warning) => {
    const outcome = await judgeFor(await host()).judge(request);
    expect(outcome.ok).toBe(false);
    if (!outcome.ok) {
      expect(outcome.warning).toMatch(warning);
      expect(outcome.warning).toMatch(/quality scored from checks and heuristics only$/);
    }
  });

  it('gives up at its timeout on a slow judge (the run does not wait for it)', async () => {
    const s = await stub({ replies: [{ hang: true }] });
    const started = Date.now();
    const outcome = await judgeFor(s.url, { timeout: 0.3 }).judge(request);
    const elapsed = Date.now() - started;
    expect(outcome).toMatchObject({ ok: false, warning: expect.stringMatching(/did not answer within 0.3s/) });
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(2000);
  });

  it('stops when the run is stopped', async () => {
    const s = await stub({ replies: [{ hang: true }] });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const outcome = await judgeFor(s.url, { timeout: 10 }).judge({ ...request, signal: controller.signal });
    expect(outcome).toMatchObject({ ok: false, warning: expect.stringMatching(/was stopped because the run was stopped/) });
  });
});

describe('QualityController with the judge', () => {
  const input = { task: task(), call: answerCall('Added greet(name) to greet.js and ran the tests; they pass.\nSTATUS: DONE'), validation: verdict({ answer: 'Added greet(name) to greet.js and ran the tests; they pass.\nSTATUS: DONE', claimsDone: true }), checks: [check('npm test', 0)] };

  it('blends the verdict in with its weight and shows it in the breakdown', async () => {
    const s = await stub({ replies: [{ content: { ...good, score: 0.2 } }] });
    const without = new QualityController().score(input);
    const withJudge = await new QualityController({ judge: { judge: judgeFor(s.url), weight: 0.5 } }).assess(input);
    expect(withJudge.breakdown.judge).toBe(0.2);
    expect(withJudge.score).toBeCloseTo(0.5 * without.score + 0.5 * 0.2, 3);
    expect(withJudge.warnings).toEqual([]);
    expect(withJudge.notes.at(-1)).toMatch(/^LLM judge stub-judge \(\d+ ms\): 0\.20/);
  });

  it('falls back to the other evidence, with the warning, when the judge fails', async () => {
    const s = await stub({ replies: ['garbage'] });
    const without = new QualityController().score(input);
    const fallback = await new QualityController({ judge: { judge: judgeFor(s.url), weight: 0.5 } }).assess(input);
    expect(fallback.score).toBe(without.score);
    expect(fallback.breakdown).toEqual(without.breakdown);
    expect(fallback.warnings).toHaveLength(1);
  });

  it('does not call the judge when there is no answer to judge', async () => {
    const s = await stub({ replies: [{ content: good }] });
    const empty = { ...input, validation: verdict({ ok: false, codes: ['empty'], answer: '' }) };
    const report = await new QualityController({ judge: { judge: judgeFor(s.url), weight: 0.5 } }).assess(empty);
    expect(s.requests.filter((r) => r.path === '/api/chat')).toHaveLength(0);
    expect(report.notes).toContain('LLM judge skipped: there is no answer to judge');
  });
});

describe('a run with the judge enabled in config', () => {
  it('records the judge in every iteration; when the judge breaks mid-run, the run goes on and the record says why', async () => {
    const s = await stub({ replies: [{ content: good }, 'not json at all'] });
    const h = harness(
      new ScriptedAgent([
        { answer: 'Added greet(name) to greet.js.\nSTATUS: CONTINUE', turns: 2 },
        { answer: 'Documented greet(name); the greet function is complete and verified.\nSTATUS: DONE', turns: 2 },
      ]),
      { quality: { judge: { enabled: true, host: s.url, model: 'stub-judge', timeout: 2, weight: 0.3 } } },
    );
    const result = await runTask({ ...h.options(), task: 'Add a greet(name) function to greet.js' });

    expect(result.status).toBe('done');
    const [first, second] = h.records(result.runId);
    expect(first!.qualityBreakdown.judge).toBe(0.9);
    expect(first!.confidenceExplanation[1]).toMatch(/\(LLM judge 0\.90\)/);
    expect(second!.qualityBreakdown.judge).toBeUndefined();
    const warning = second!.confidenceExplanation.find((l) => l.startsWith('warning: '));
    expect(warning).toMatch(/^warning: LLM judge \(stub-judge at http:\/\/127\.0\.0\.1:\d+\) answered something that is not JSON/);
    expect(s.requests.filter((r) => r.path === '/api/chat')).toHaveLength(2);
  });
});

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}
