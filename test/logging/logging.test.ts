import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ProgressReporter, type Verbosity } from '../../src/cli/progress.js';
import type { IterationRecord } from '../../src/core/types.js';
import type { EngineEvent } from '../../src/index.js';
import { fanOut, RunLog } from '../../src/logging/run-log.js';

/** A stream that records what is written to it, optionally pretending to be a terminal. */
class Capture extends Writable {
  text = '';
  constructor(readonly isTTY = false) {
    super();
  }
  override _write(chunk: Buffer, _enc: string, done: () => void) {
    this.text += chunk.toString();
    done();
  }
}

const record = (extra: Partial<IterationRecord> = {}): IterationRecord => ({
  runId: 'run-1',
  index: 1,
  states: ['building', 'prompting', 'awaitingAgent', 'validating', 'scoring', 'deciding', 'persisting'],
  attempts: 3,
  retryDelaysMs: [2000, 3000],
  sessionId: 'abc123',
  sessionMode: 'resume',
  prompt: 'p',
  agent: null,
  validation: { ok: false, reasons: ['the answer is empty'], codes: ['empty'], answer: '', claimsDone: false },
  quality: 0.72,
  qualityBreakdown: { syntax: 1, requirements: 0.7, code_quality: 0.8, testing: 0.5 },
  checks: [{ command: 'npm test', exitCode: 1, durationMs: 120, timedOut: false, outputTail: '1 failing' }],
  confidence: 0.61,
  confidenceExplanation: ['validation 0: failed (empty)', 'quality 0.72', 'warning: LLM judge (m at h) is unreachable (ECONNREFUSED); quality scored from checks and heuristics only'],
  decision: 'retry',
  decisionRule: 'validationFailed',
  reason: 'the answer is empty',
  feedback: 'fix it',
  costUsd: 0.01,
  turns: 2,
  startedAt: 1000,
  finishedAt: 6000,
  failure: null,
  ...extra,
});

/** The seed's session: two busy waits, then the answer, then a decision; with a clock that moves 0.5 s a step. */
function session(): EngineEvent[] {
  return [
    { type: 'run-started', runId: 'run-1', resumed: false, store: '/store' },
    { type: 'state', actor: 'task', index: 0, state: 'running', at: 0 },
    { type: 'state', actor: 'iteration', index: 1, state: 'building', at: 0 },
    { type: 'state', actor: 'iteration', index: 1, state: 'awaitingAgent', at: 0 },
    { type: 'agent-progress', index: 1, progress: { kind: 'tool', name: 'Edit', input: {} } },
    { type: 'retry', kind: 'sessionBusy', index: 1, sessionId: 'abc123', delayMs: 2000, attempt: 1, maxRetries: 5, dueAt: 2000, reason: 'busy' } as EngineEvent,
    { type: 'state', actor: 'iteration', index: 1, state: 'retryingSessionLock', at: 0 },
    { type: 'retry', kind: 'sessionBusy', index: 1, sessionId: 'abc123', delayMs: 3000, attempt: 2, maxRetries: 5, dueAt: 5000, reason: 'busy' } as EngineEvent,
    { type: 'response', index: 1, chars: 683, attempts: 3, durationMs: 4000 },
    { type: 'state', actor: 'iteration', index: 1, state: 'validating', at: 0 },
    { type: 'iteration-done', record: record() },
    { type: 'state', actor: 'iteration', index: 1, state: 'persisting', at: 0 },
    { type: 'run-finished', runId: 'run-1', status: 'escalated', reason: 'stuck' },
  ];
}

function report(verbosity: Verbosity, out = new Capture(), env: NodeJS.ProcessEnv = {}) {
  let t = 0;
  const reporter = new ProgressReporter(verbosity, out as unknown as NodeJS.WriteStream, { now: () => (t += 500) - 500, env });
  for (const event of session()) reporter.handle(event);
  reporter.dispose();
  return out.text;
}

describe('terminal progress', () => {
  it('not a terminal: plain lines — a line per state with the elapsed time, the seed\'s warnings, the decision after persisting', () => {
    const text = report('normal');
    expect(text).not.toMatch(/\x1b|\r/);
    expect(text.trimEnd().split('\n')).toEqual([
      'Run run-1  (store /store)',
      '  +0.5s [iteration 1] building',
      '  +1.0s [iteration 1] awaitingAgent',
      'WARNING Session abc123 in use, retrying in 2.0s (attempt 1/5)',
      '  +1.5s [iteration 1] retryingSessionLock',
      'WARNING Session abc123 in use, retrying in 3.0s (attempt 2/5)',
      'INFO Received response (683 chars) after 3 attempts',
      '  +2.0s [iteration 1] validating',
      '  +2.5s [iteration 1] persisting',
      '  +3.0s [iteration 1] decision retry (validationFailed) quality 0.72 confidence 0.61 — the answer is empty',
      '    check `npm test` → exit 1 (120 ms)',
      'WARNING LLM judge (m at h) is unreachable (ECONNREFUSED); quality scored from checks and heuristics only',
      'Run run-1: escalated — stuck',
    ]);
  });

  it('--quiet prints nothing', () => {
    expect(report('quiet')).toBe('');
  });

  it('--verbose adds the task states, the agent\'s tool calls, validation, quality parts and the confidence explanation', () => {
    // Elapsed times shift with the extra lines: compare without them.
    const strip = (text: string) => text.split('\n').map((line) => line.replace(/^ *\+\d+\.\ds /, ''));
    const normal = strip(report('normal'));
    const verbose = strip(report('verbose'));
    const extra = verbose.filter((line) => !normal.includes(line));
    expect(extra).toEqual([
      'task → running',
      '    tool: Edit',
      '    validation: the answer is empty',
      '    quality: syntax 1, requirements 0.7, code_quality 0.8, testing 0.5',
      '    confidence: validation 0: failed (empty)',
      '    confidence: quality 0.72',
    ]);
  });

  it('on a terminal: colours, and a countdown redrawn in place during a backoff wait', async () => {
    const out = new Capture(true);
    let now = 0;
    const reporter = new ProgressReporter('normal', out as unknown as NodeJS.WriteStream, { now: () => now, env: {} });
    reporter.handle({ type: 'retry', kind: 'sessionBusy', index: 1, sessionId: 'abc123', delayMs: 2000, attempt: 1, maxRetries: 5, dueAt: 2000, reason: 'busy' } as EngineEvent);
    now = 1500;
    await new Promise((r) => setTimeout(r, 130));
    reporter.handle({ type: 'state', actor: 'iteration', index: 1, state: 'awaitingAgent', at: 2000 });
    reporter.dispose();
    expect(out.text).toContain('\x1b[33mWARNING Session abc123 in use, retrying in 2.0s (attempt 1/5)\x1b[39m\n');
    expect(out.text).toContain('\r  waiting 2.0s ');
    expect(out.text).toContain('\r  waiting 0.5s ');
    // The countdown line is cleared before the next line is printed.
    expect(out.text).toMatch(/\r\x1b\[2K.*\[iteration 1\] .*awaitingAgent/);
  });

  it('NO_COLOR on a terminal keeps the countdown but drops the colours; CI counts as no terminal', () => {
    const noColor = report('normal', new Capture(true), { NO_COLOR: '1' });
    expect(noColor).not.toContain('\x1b[33m');
    expect(noColor).toContain('\r  waiting');
    const ci = report('normal', new Capture(true), { CI: 'true' });
    expect(ci).not.toMatch(/\x1b|\r/);
  });
});

describe('run.log (pino, one JSON object a line)', () => {
  const storeWithRun = () => {
    const store = mkdtempSync(join(tmpdir(), 'obra-log-'));
    mkdirSync(join(store, 'runs', 'run-1'), { recursive: true });
    return store;
  };
  const lines = (store: string) => readFileSync(join(store, 'runs', 'run-1', 'run.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));

  it('writes the run\'s events with levels, the seed\'s messages, and the facts as fields', () => {
    const store = storeWithRun();
    const log = new RunLog({ storeDir: store });
    for (const event of session()) log.handle(event);
    const entries = lines(store);
    expect(entries.every((e) => e.runId === 'run-1' && typeof e.time === 'string' && e.pid === process.pid)).toBe(true);
    expect(entries.map((e) => [e.level, e.msg])).toEqual([
      [30, 'Run run-1 started'],
      [30, 'task → running'],
      [40, 'Session abc123 in use, retrying in 2.0s (attempt 1/5)'],
      [40, 'Session abc123 in use, retrying in 3.0s (attempt 2/5)'],
      [30, 'Received response (683 chars) after 3 attempts'],
      [30, 'Iteration 1: retry (validationFailed) — the answer is empty'],
      [40, 'LLM judge (m at h) is unreachable (ECONNREFUSED); quality scored from checks and heuristics only'],
      [40, 'Run run-1: escalated — stuck'],
    ]);
    expect(entries[2]).toMatchObject({ event: 'retry', sessionId: 'abc123', delayMs: 2000, attempt: 1, maxRetries: 5 });
    expect(entries[5]).toMatchObject({ decision: 'retry', rule: 'validationFailed', quality: 0.72, confidence: 0.61, checks: [{ command: 'npm test', exitCode: 1, durationMs: 120 }], durationMs: 5000 });
  });

  it('level debug adds the iteration states and the agent\'s progress; a resumed run appends to the same file', () => {
    const store = storeWithRun();
    const first = new RunLog({ storeDir: store, level: 'debug' });
    for (const event of session()) first.handle(event);
    const debugLines = lines(store).filter((e) => e.level === 20).map((e) => e.msg);
    expect(debugLines).toEqual(['iteration 1 → building', 'iteration 1 → awaitingAgent', 'agent tool', 'iteration 1 → retryingSessionLock', 'iteration 1 → validating', 'iteration 1 → persisting']);
    const count = lines(store).length;
    const second = new RunLog({ storeDir: store });
    second.handle({ type: 'run-started', runId: 'run-1', resumed: true, store });
    second.handle({ type: 'run-finished', runId: 'run-1', status: 'done', reason: '' });
    expect(lines(store).slice(count).map((e) => e.msg)).toEqual(['Resuming run run-1', 'Run run-1: done']);
  });

  it('fanOut feeds every listener; a log that cannot be written never throws into the run', () => {
    const seen: string[] = [];
    // A store "directory" that is a file: the log cannot be created under it.
    const file = join(mkdtempSync(join(tmpdir(), 'obra-log-')), 'not-a-dir');
    writeFileSync(file, '');
    const broken = new RunLog({ storeDir: file });
    const listener = fanOut((e) => seen.push(e.type), broken.handle, null, undefined);
    expect(() => listener({ type: 'run-started', runId: 'run-1', resumed: false, store: '/x' })).not.toThrow();
    expect(seen).toEqual(['run-started']);
  });
});
