import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import type { EngineEvent } from '../engine/events.js';
import { apiRetryMessage, denialMessage, responseMessage, retryMessage, usageLimitMessage, usageWarningMessage } from './messages.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface RunLogOptions {
  level?: LogLevel;
  /** Where the store is; the log goes to `<store>/runs/<runId>/run.log`. Taken from `run-started` when absent. */
  storeDir?: string;
}

/**
 * A structured log per run: `runs/<runId>/run.log`, one JSON object a line (pino), fed from the runner's
 * EngineEvents. It is opened on `run-started` and appended to by every later drive of the same run (resume,
 * answer), so the file tells the run's whole story. Writes are synchronous: a crash loses no line.
 *
 * The messages keep the seed's shapes (`Session <id> in use, retrying in 2.0s (attempt 1/5)`,
 * `Received response (683 chars) after 3 attempts`); the fields carry the same facts for machines.
 */
export class RunLog {
  private logger: Logger | null = null;
  /** The log file, written with plain synchronous appends (no SonicBoom worker or buffer to flush or hang on). */
  private fd: number | null = null;
  /** Where the log is being written (null until the run started). */
  path: string | null = null;

  constructor(private readonly options: RunLogOptions = {}) {}

  handle = (event: EngineEvent): void => {
    try {
      this.write(event);
    } catch {
      // A log that cannot be written must never stop the run.
    }
  };

  private write(event: EngineEvent): void {
    if (event.type === 'run-started') this.open(event.runId, this.options.storeDir ?? event.store);
    const log = this.logger;
    if (!log) return;
    switch (event.type) {
      case 'run-started':
        log.info({ event: event.type, resumed: event.resumed, store: event.store }, event.resumed ? `Resuming run ${event.runId}` : `Run ${event.runId} started`);
        break;
      case 'state':
        if (event.actor === 'task') log.info({ event: event.type, actor: 'task', state: event.state, iterations: event.index }, `task → ${event.state}`);
        else log.debug({ event: event.type, actor: 'iteration', index: event.index, state: event.state }, `iteration ${event.index} → ${event.state}`);
        break;
      case 'retry':
        log.warn(
          { event: event.type, kind: event.kind, index: event.index, sessionId: event.sessionId, holder: event.holder, delayMs: event.delayMs, attempt: event.attempt, maxRetries: event.maxRetries, reason: event.reason },
          retryMessage(event),
        );
        break;
      case 'response':
        log.info({ event: event.type, index: event.index, chars: event.chars, attempts: event.attempts, durationMs: event.durationMs }, responseMessage(event));
        break;
      case 'agent-progress': {
        const progress = event.progress;
        if (progress.kind === 'apiRetry') log.warn({ event: 'api-retry', index: event.index, ...progress }, apiRetryMessage(progress));
        else if (progress.kind === 'usage' && progress.status === 'allowed_warning') log.warn({ event: 'usage-warning', index: event.index, ...progress }, usageWarningMessage(progress));
        else if (progress.kind === 'earlierCallStopped') log.warn({ event: 'earlier-call-stopped', index: event.index, sessionId: progress.sessionId, pgid: progress.pgid, ownerPid: progress.ownerPid }, progress.message);
        else log.debug({ event: event.type, index: event.index, progress }, `agent ${progress.kind}`);
        break;
      }
      case 'usage-limit':
        log.warn(
          { event: event.type, index: event.index, limitType: event.limitType, resetsAt: new Date(event.resetsAt).toISOString(), dueAt: new Date(event.dueAt).toISOString() },
          `${usageLimitMessage(event)}: ${event.message}`,
        );
        break;
      case 'iteration-done': {
        const r = event.record;
        log.info(
          {
            event: event.type,
            index: r.index,
            decision: r.decision,
            rule: r.decisionRule,
            quality: r.quality,
            qualityBreakdown: r.qualityBreakdown,
            confidence: r.confidence,
            validation: r.validation ? { ok: r.validation.ok, codes: r.validation.codes } : null,
            checks: r.checks.map((c) => ({ command: c.command, exitCode: c.exitCode, durationMs: c.durationMs })),
            costUsd: r.costUsd,
            turns: r.turns,
            durationMs: r.finishedAt - r.startedAt,
            failure: r.failure,
          },
          `Iteration ${r.index}: ${r.decision} (${r.decisionRule})${r.reason ? ` — ${r.reason}` : ''}`,
        );
        for (const warning of warningsOf(r.confidenceExplanation)) log.warn({ event: 'warning', index: r.index }, warning);
        for (const note of r.sessionNotes ?? []) log.warn({ event: 'session-note', index: r.index }, note);
        for (const denial of r.permissionDenials ?? []) log.warn({ event: 'permission-denied', index: r.index, ...denial }, denialMessage(denial));
        break;
      }
      case 'run-finished': {
        const level = event.status === 'failed' ? 'error' : event.status === 'done' ? 'info' : 'warn';
        log[level]({ event: event.type, status: event.status, reason: event.reason }, `Run ${event.runId}: ${event.status}${event.reason ? ` — ${event.reason}` : ''}`);
        this.close();
        break;
      }
    }
  }

  private open(runId: string, storeDir: string): void {
    this.close();
    const dir = join(storeDir, 'runs', runId);
    mkdirSync(dir, { recursive: true });
    this.path = join(dir, 'run.log');
    const fd = openSync(this.path, 'a');
    this.fd = fd;
    this.logger = pino(
      { level: this.options.level ?? 'info', base: { runId, pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
      { write: (line: string) => void writeSync(fd, line) },
    );
  }

  close(): void {
    if (this.fd === null) return;
    closeSync(this.fd);
    this.fd = null;
    this.logger = null;
  }
}

/** The warnings an iteration carries (the judge fell back, ...), without their `warning: ` prefix. */
export function warningsOf(confidenceExplanation: string[]): string[] {
  return confidenceExplanation.filter((line) => line.startsWith('warning: ')).map((line) => line.slice('warning: '.length));
}

/** Feeds one engine event stream to several listeners (progress on the terminal, the run log, ...). */
export function fanOut(...listeners: (((event: EngineEvent) => void) | null | undefined)[]): (event: EngineEvent) => void {
  const active = listeners.filter((l): l is (event: EngineEvent) => void => typeof l === 'function');
  return (event) => {
    for (const listener of active) listener(event);
  };
}
