import { appendFileSync, closeSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { EngineEvent } from '../engine/events.js';

/**
 * A run's live events, `runs/<id>/events.jsonl`: what the agent says and does as it happens (its text, its tool
 * calls, the files it touches), the checks' output, the decisions. The journal holds the statecharts' steps,
 * not the agent's stream, so this small append-only log is what the run page's stream tails. One JSON object a
 * line, appended as each event arrives; losing its last line in a crash loses nothing the run needs.
 */

export const EVENT_LOG = 'events.jsonl';

export type LiveEvent = { at: number; index: number } & (
  | { kind: 'text'; text: string }
  | { kind: 'tool'; name: string; detail: string; file: string | null }
  | { kind: 'state'; actor: 'task' | 'iteration'; state: string }
  | { kind: 'checks'; checks: { command: string; exitCode: number | null; timedOut: boolean; output: string }[] }
  | { kind: 'decision'; decision: string; rule: string; reason: string; costUsd: number }
  | { kind: 'note'; text: string }
  | { kind: 'finished'; status: string; reason: string }
);

/** A long text is cut here: the log follows the run, the run's own files keep everything. */
const MAX_TEXT = 4000;

/** What the log keeps of an engine event (null: nothing worth showing live). */
export function liveEventOf(event: EngineEvent, at = Date.now()): LiveEvent | null {
  switch (event.type) {
    case 'agent-progress': {
      const p = event.progress;
      if (p.kind === 'text') return { at, index: event.index, kind: 'text', text: cut(p.text) };
      if (p.kind === 'tool') {
        const input = (p.input ?? {}) as Record<string, unknown>;
        const file = typeof input.file_path === 'string' ? input.file_path : typeof input.notebook_path === 'string' ? input.notebook_path : null;
        const detail = typeof input.command === 'string' ? input.command : (file ?? (typeof input.pattern === 'string' ? input.pattern : ''));
        return { at, index: event.index, kind: 'tool', name: p.name, detail: cut(detail), file };
      }
      if (p.kind === 'apiRetry') return { at, index: event.index, kind: 'note', text: `the API is retried (${p.errorStatus ?? p.error}), attempt ${p.attempt}/${p.maxRetries}` };
      return null;
    }
    case 'state':
      return { at, index: event.index, kind: 'state', actor: event.actor, state: event.state };
    case 'iteration-done': {
      const r = event.record;
      return { at, index: r.index, kind: 'decision', decision: r.decision, rule: r.decisionRule, reason: cut(r.reason), costUsd: r.costUsd };
    }
    case 'retry':
      return { at, index: event.index, kind: 'note', text: `${event.kind === 'rateLimited' ? 'rate limited' : 'session busy'}: retrying in ${(event.delayMs / 1000).toFixed(1)} s` };
    case 'usage-limit':
      return { at, index: event.index, kind: 'note', text: `usage limit reached: waiting until ${new Date(event.dueAt).toISOString()}` };
    case 'run-finished':
      return { at, index: 0, kind: 'finished', status: event.status, reason: cut(event.reason) };
    default:
      return null;
  }
}

/** The checks' output of a finished iteration, logged before its decision. */
function checksOf(event: EngineEvent, at: number): LiveEvent | null {
  if (event.type !== 'iteration-done' || !event.record.checks.length) return null;
  const checks = event.record.checks.map((c) => ({ command: c.command, exitCode: c.exitCode, timedOut: c.timedOut, output: cut(c.outputTail) }));
  return { at, index: event.record.index, kind: 'checks', checks };
}

/** An `onEvent` that appends a run's live events to its log (a write that fails never stops the run). */
export function eventLogWriter(runDir: string): (event: EngineEvent) => void {
  const path = join(runDir, EVENT_LOG);
  return (event) => {
    const at = Date.now();
    const lines = [checksOf(event, at), liveEventOf(event, at)].filter((e): e is LiveEvent => e !== null);
    if (!lines.length) return;
    try {
      appendFileSync(path, lines.map((e) => `${JSON.stringify(e)}\n`).join(''));
    } catch {
      // A full disk stops the run elsewhere, with its own message.
    }
  };
}

/** The whole lines appended at or after byte `from`, and where the next read starts (a half-written line waits). */
export function readEventsFrom(runDir: string, from: number): { events: LiveEvent[]; next: number } {
  const path = join(runDir, EVENT_LOG);
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    return { events: [], next: from };
  }
  // A log cut shorter (a discarded run made anew) is read from its start.
  const start = size < from ? 0 : from;
  if (size === start) return { events: [], next: start };
  const buffer = Buffer.alloc(size - start);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, buffer, 0, buffer.length, start);
  } finally {
    closeSync(fd);
  }
  const end = buffer.lastIndexOf(0x0a) + 1;
  const events: LiveEvent[] = [];
  for (const line of buffer.subarray(0, end).toString('utf8').split('\n')) {
    if (!line) continue;
    try {
      events.push(JSON.parse(line) as LiveEvent);
    } catch {
      // A torn line (a crash mid-write) is skipped.
    }
  }
  return { events, next: start + end };
}

const cut = (text: string) => (text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT - 1)}…` : text);
