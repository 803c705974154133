import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScriptedAgent, type ScriptedReply } from '../../src/agents/scripted-agent.js';
import type { RunResult } from '../../src/engine/run-result.js';
import { RunStore } from '../../src/store/run-store.js';

export const tempDir = (prefix = 'obra-durable-') => mkdtempSync(join(tmpdir(), prefix));

export const BUSY: ScriptedReply = { outcome: { kind: 'sessionBusy', message: 'Error: Session ID x is already in use.' } };
/** Busy because another Obra call holds the session's lock (no switch to --resume first, straight to backoff). */
export const BUSY_HELD: ScriptedReply = { outcome: { kind: 'sessionBusy', message: 'Session in use (held by process 1).', holder: 'process 1' } };

/**
 * An agent whose answer depends only on which iteration and which attempt is asking, so a call issued again
 * after a crash gets the same answer as the first time: iteration 2 finds the session busy once, iteration 3
 * says it is done.
 */
export function deterministicAgent(options: { iterations?: number; busyIn?: number[] } = {}): ScriptedAgent {
  const last = options.iterations ?? 3;
  const busyIn = options.busyIn ?? [2];
  return new ScriptedAgent((request) => {
    if (busyIn.includes(request.index) && request.attempt === 1) return BUSY;
    if (request.index >= last) return `Iteration ${request.index}: reviewed everything, all tests pass.\nSTATUS: DONE`;
    return `Iteration ${request.index}: implemented part ${request.index} and its tests.\nSTATUS: CONTINUE`;
  });
}

/**
 * What must be equal between an interrupted-then-resumed run and an uninterrupted one. Session ids are random
 * per run: they are compared as "the same session as iteration N" (the first is #1).
 */
export function outcomeOf(result: RunResult) {
  const sessions: string[] = [];
  const sessionNumber = (id: string) => {
    if (!sessions.includes(id)) sessions.push(id);
    return `#${sessions.indexOf(id) + 1}`;
  };
  return {
    status: result.status,
    reason: result.reason,
    iterations: result.iterations.map((i) => ({
      index: i.index,
      states: i.states,
      decision: i.decision,
      decisionRule: i.decisionRule,
      attempts: i.attempts,
      retryDelaysMs: i.retryDelaysMs,
      quality: i.quality,
      confidence: i.confidence,
      session: sessionNumber(i.sessionId),
    })),
  };
}

/**
 * Makes a copy of a finished run as a SIGKILL right after journal line `lines` would have left it: the journal
 * up to that line, the iteration records written by then (for a kill in `persisting`, with or without the
 * record, as both can happen), run.json still saying `running`, and no live lock holder.
 */
export function crashedCopy(storeDir: string, runId: string, lines: number, options: { withRecord: boolean }): string {
  const copy = tempDir('obra-crashed-');
  cpSync(join(storeDir, 'obra-store.json'), join(copy, 'obra-store.json'));
  mkdirSync(join(copy, 'runs'));
  cpSync(join(storeDir, 'runs', runId), join(copy, 'runs', runId), { recursive: true });
  const runDir = join(copy, 'runs', runId);
  const entries = RunStore.open(storeDir).openRun(runId).readJournal({ markers: true });
  const at = entries[lines - 1];
  const journal = readFileSync(join(runDir, 'journal.jsonl'), 'utf8').split('\n').slice(0, lines).join('\n');
  writeFileSync(join(runDir, 'journal.jsonl'), lines ? `${journal}\n` : '');
  const absorbed = at ? (at.snapshot as { context: { iterations: number } }).context.iterations : 0;
  const running = at ? (at.iteration?.index ?? null) : 0;
  const keep = (index: number) =>
    running === null ? index <= absorbed : index < running || (options.withRecord && index === running && at?.iteration?.state === 'persisting');
  const records = readFileSync(join(runDir, 'iterations.jsonl'), 'utf8').split('\n').filter(Boolean);
  writeFileSync(join(runDir, 'iterations.jsonl'), records.filter((line) => keep((JSON.parse(line) as { index: number }).index)).map((l) => `${l}\n`).join(''));
  const runFile = JSON.parse(readFileSync(join(runDir, 'run.json'), 'utf8'));
  writeFileSync(join(runDir, 'run.json'), JSON.stringify({ ...runFile, status: 'running', reason: '', finishedAt: null }));
  return copy;
}
