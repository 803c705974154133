import { appendFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { IterationRecord } from '../../src/core/types.js';
import { EVENT_LOG, eventLogWriter, liveEventOf, readEventsFrom } from '../../src/store/event-log.js';

/** A run's live events log: what it keeps of the engine's events, and reading it as it grows. */

describe('the live events log', () => {
  it('keeps the agent\'s text and tools (the file it writes), the states, the checks\' output before the decision, the end', () => {
    const dir = mkdtempSync(join(tmpdir(), 'obra-events-'));
    const log = eventLogWriter(dir);
    log({ type: 'agent-progress', index: 1, progress: { kind: 'text', text: 'x'.repeat(5000) } });
    log({ type: 'agent-progress', index: 1, progress: { kind: 'tool', name: 'Edit', input: { file_path: '/w/a.ts', old_string: 'a' } } });
    log({ type: 'agent-progress', index: 1, progress: { kind: 'tool', name: 'Bash', input: { command: 'npm test' } } });
    log({ type: 'agent-progress', index: 1, progress: { kind: 'started', sessionId: 's', argv: [] } });
    log({ type: 'state', actor: 'iteration', index: 1, state: 'awaitingAgent', at: 5 });
    const record = { index: 1, decision: 'retry', decisionRule: 'checksFailing', reason: '1 check fails', costUsd: 0.01, checks: [{ command: 'npm test', exitCode: 1, durationMs: 9, timedOut: false, outputTail: 'FAIL a.test.ts' }] } as unknown as IterationRecord;
    log({ type: 'iteration-done', record });
    log({ type: 'run-finished', runId: 'r', status: 'failed', reason: 'gave up' });
    const { events, next } = readEventsFrom(dir, 0);
    expect(events.map(({ at: _at, ...rest }) => rest)).toEqual([
      { index: 1, kind: 'text', text: `${'x'.repeat(3999)}…` },
      { index: 1, kind: 'tool', name: 'Edit', detail: '/w/a.ts', file: '/w/a.ts' },
      { index: 1, kind: 'tool', name: 'Bash', detail: 'npm test', file: null },
      { index: 1, kind: 'state', actor: 'iteration', state: 'awaitingAgent' },
      { index: 1, kind: 'checks', checks: [{ command: 'npm test', exitCode: 1, timedOut: false, output: 'FAIL a.test.ts' }] },
      { index: 1, kind: 'decision', decision: 'retry', rule: 'checksFailing', reason: '1 check fails', costUsd: 0.01 },
      { index: 0, kind: 'finished', status: 'failed', reason: 'gave up' },
    ]);
    expect(readEventsFrom(dir, next)).toEqual({ events: [], next });
    expect(liveEventOf({ type: 'response', index: 1, chars: 3, attempts: 1, durationMs: 4 })).toBeNull();
  });

  it('reads whole lines only: a half-written one waits for its end, a torn one is skipped', () => {
    const dir = mkdtempSync(join(tmpdir(), 'obra-events-'));
    const path = join(dir, EVENT_LOG);
    expect(readEventsFrom(dir, 0)).toEqual({ events: [], next: 0 });
    const one = `${JSON.stringify({ at: 1, index: 1, kind: 'note', text: 'one' })}\n`;
    writeFileSync(path, `${one}{"at":2,"index":1,"ki`);
    expect(readEventsFrom(dir, 0)).toEqual({ events: [{ at: 1, index: 1, kind: 'note', text: 'one' }], next: one.length });
    appendFileSync(path, 'nd":"note","text":"two"}\n{torn\n');
    const rest = readEventsFrom(dir, one.length);
    expect(rest.events).toEqual([{ at: 2, index: 1, kind: 'note', text: 'two' }]);
    // A log cut shorter than where a reader was (made anew) is read from its start.
    writeFileSync(path, one);
    expect(readEventsFrom(dir, rest.next).events).toEqual([{ at: 1, index: 1, kind: 'note', text: 'one' }]);
  });
});
