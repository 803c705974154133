import type { EngineEvent } from '../engine/events.js';
import type { IterationRecord } from '../core/types.js';
import { apiRetryMessage, denialMessage, responseMessage, retryMessage, spanText, usageLimitMessage, usageWarningMessage } from '../logging/messages.js';
import { warningsOf } from '../logging/run-log.js';

export type Verbosity = 'quiet' | 'normal' | 'verbose';

export interface ProgressOptions {
  /** The clock for elapsed times and the countdown (tests pass their own). */
  now?: () => number;
  /** Overrides the terminal detection (tests). */
  tty?: boolean;
  env?: NodeJS.ProcessEnv;
}

/**
 * Prints a run as it happens, on stderr (stdout stays clean for --json):
 *  - normal: one line per iteration state with the elapsed time, the seed's warnings for busy sessions and
 *    answers, each iteration's decision, checks and warnings, and a live countdown during a backoff wait;
 *  - verbose: also the task machine's states, the agent's tool calls and text, validation problems and the
 *    confidence explanation;
 *  - quiet: nothing (errors are printed by the CLI itself).
 * On a terminal it uses colour (unless NO_COLOR) and redraws the countdown in place; when stderr is not a
 * terminal (a pipe, a file, CI) it writes plain lines only: no colours, no carriage returns, no countdown.
 */
export class ProgressReporter {
  private readonly now: () => number;
  private readonly started: number;
  private countdown: NodeJS.Timeout | null = null;
  private readonly tty: boolean;
  private readonly color: boolean;
  /** An iteration's decision, held back until its `persisting` line is printed (the record is saved first). */
  private pendingDone: IterationRecord | null = null;

  constructor(
    private readonly verbosity: Verbosity,
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr,
    options: ProgressOptions = {},
  ) {
    const env = options.env ?? process.env;
    this.now = options.now ?? Date.now;
    this.started = this.now();
    this.tty = options.tty ?? (Boolean(out.isTTY) && !env.CI);
    this.color = this.tty && !env.NO_COLOR && env.TERM !== 'dumb';
  }

  handle = (event: EngineEvent): void => {
    if (this.verbosity === 'quiet') return;
    if (this.pendingDone) {
      const pending = this.pendingDone;
      const persistingLine = event.type === 'state' && event.actor === 'iteration' && event.state === 'persisting' && event.index === pending.index;
      if (persistingLine) this.print(event);
      this.pendingDone = null;
      this.printDecision(pending);
      if (persistingLine) return;
    }
    if (event.type === 'iteration-done') {
      this.pendingDone = event.record;
      return;
    }
    this.print(event);
  };

  private print(event: EngineEvent): void {
    switch (event.type) {
      case 'run-started':
        this.line(`${this.bold(event.resumed ? 'Resuming run' : 'Run')} ${event.runId}  (store ${event.store})`);
        break;
      case 'state':
        this.stopCountdown();
        if (event.actor === 'iteration') this.line(`${this.dim(this.elapsed())} [iteration ${event.index}] ${this.bold(event.state)}`);
        else if (this.verbosity === 'verbose') this.line(`${this.dim(this.elapsed())} task → ${event.state}`);
        break;
      case 'retry':
        this.line(this.yellow(retryLine(event)));
        this.startCountdown(event.dueAt);
        break;
      case 'response':
        this.line(`INFO ${responseMessage(event)}`);
        break;
      case 'agent-progress': {
        const progress = event.progress;
        // Why a call is slow, and a limit coming: shown at the normal level.
        if (progress.kind === 'apiRetry') this.line(this.yellow(`WARNING ${apiRetryMessage(progress)}`));
        else if (progress.kind === 'usage' && progress.status === 'allowed_warning') this.line(this.yellow(`WARNING ${usageWarningMessage(progress)}`));
        else if (progress.kind === 'earlierCallStopped') this.line(this.yellow(`WARNING ${progress.message}`));
        if (this.verbosity !== 'verbose') break;
        if (progress.kind === 'tool') this.line(this.dim(`    tool: ${progress.name}`));
        else if (progress.kind === 'text') this.line(this.dim(`    agent: ${progress.text.split('\n')[0]!.slice(0, 120)}`));
        else if (progress.kind === 'started') this.line(this.dim(`    $ ${progress.argv.join(' ')}`));
        break;
      }
      case 'usage-limit':
        this.line(this.yellow(`WARNING ${usageLimitMessage(event)}: ${event.message}`));
        this.startCountdown(event.dueAt);
        break;
      case 'iteration-done':
        this.printDecision(event.record);
        break;
      case 'run-finished':
        this.stopCountdown();
        this.line(`${this.bold(`Run ${event.runId}: ${event.status}`)}${event.reason ? ` — ${event.reason}` : ''}`);
        break;
    }
  }

  private printDecision(r: IterationRecord): void {
    const q = r.quality === null ? '-' : r.quality.toFixed(2);
    const c = r.confidence === null ? '-' : r.confidence.toFixed(2);
    this.line(`${this.dim(this.elapsed())} [iteration ${r.index}] decision ${this.bold(r.decision)} (${r.decisionRule}) quality ${q} confidence ${c}${r.reason ? ` — ${r.reason}` : ''}`);
    for (const check of r.checks) this.line(`    check \`${check.command}\` → exit ${check.exitCode ?? (check.timedOut ? 'timeout' : 'none')} (${check.durationMs} ms)`);
    for (const warning of warningsOf(r.confidenceExplanation)) this.line(this.yellow(`WARNING ${warning}`));
    for (const note of r.sessionNotes ?? []) this.line(this.yellow(`WARNING ${note}`));
    for (const denial of r.permissionDenials ?? []) this.line(this.yellow(`DENIED ${denialMessage(denial)}`));
    if (this.verbosity !== 'verbose') return;
    if (r.validation && !r.validation.ok) this.line(this.dim(`    validation: ${r.validation.reasons.join('; ')}`));
    this.line(this.dim(`    quality: ${Object.entries(r.qualityBreakdown).map(([k, v]) => `${k} ${v}`).join(', ')}`));
    for (const line of r.confidenceExplanation.filter((l) => !l.startsWith('warning: '))) this.line(this.dim(`    confidence: ${line}`));
  }

  dispose(): void {
    if (this.pendingDone && this.verbosity !== 'quiet') this.printDecision(this.pendingDone);
    this.pendingDone = null;
    this.stopCountdown();
  }

  private startCountdown(dueAt: number): void {
    if (!this.tty) return;
    this.stopCountdown();
    const draw = () => this.out.write(`\r  waiting ${spanText(dueAt - this.now())} `);
    draw();
    // Tenths of a second for a backoff; once a second for a wait of hours.
    this.countdown = setInterval(draw, dueAt - this.now() > 60_000 ? 1000 : 100);
    this.countdown.unref();
  }

  private stopCountdown(): void {
    if (!this.countdown) return;
    clearInterval(this.countdown);
    this.countdown = null;
    this.out.write('\r\x1b[2K');
  }

  private line(text: string): void {
    this.out.write(`${text}\n`);
  }

  private elapsed(): string {
    return `+${((this.now() - this.started) / 1000).toFixed(1)}s`.padStart(7);
  }

  private bold = (s: string) => (this.color ? `\x1b[1m${s}\x1b[22m` : s);
  private dim = (s: string) => (this.color ? `\x1b[2m${s}\x1b[22m` : s);
  private yellow = (s: string) => (this.color ? `\x1b[33m${s}\x1b[39m` : s);
}

/** The backoff warning line (see `retryMessage`). */
export function retryLine(event: Extract<EngineEvent, { type: 'retry' }>): string {
  return `WARNING ${retryMessage(event)}`;
}
