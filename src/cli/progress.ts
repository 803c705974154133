import type { EngineEvent } from '../engine/runner.js';

export type Verbosity = 'quiet' | 'normal' | 'verbose';

/**
 * Prints a run as it happens, on stderr (stdout stays clean for --json): one line per state with the elapsed
 * time, the seed's warnings for busy sessions and answers, and a live countdown during a backoff wait when
 * stderr is a terminal. No colours or redraws when it is not.
 */
export class ProgressReporter {
  private readonly started = Date.now();
  private countdown: NodeJS.Timeout | null = null;
  private readonly tty: boolean;
  private readonly color: boolean;

  constructor(
    private readonly verbosity: Verbosity,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = Boolean(out.isTTY) && !process.env.CI;
    this.color = this.tty && !process.env.NO_COLOR;
  }

  handle = (event: EngineEvent): void => {
    if (this.verbosity === 'quiet') return;
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
        this.line(this.yellow(`WARNING Session ${event.sessionId} in use, retrying in ${(event.delayMs / 1000).toFixed(1)}s (attempt ${event.attempt}/${event.maxRetries})`));
        this.startCountdown(event.dueAt);
        break;
      case 'response':
        this.line(`INFO Received response (${event.chars} chars) after ${event.attempts} attempt${event.attempts === 1 ? '' : 's'}`);
        break;
      case 'agent-progress':
        if (this.verbosity !== 'verbose') break;
        if (event.progress.kind === 'tool') this.line(this.dim(`    tool: ${event.progress.name}`));
        else if (event.progress.kind === 'text') this.line(this.dim(`    agent: ${event.progress.text.split('\n')[0]!.slice(0, 120)}`));
        else this.line(this.dim(`    $ ${event.progress.argv.join(' ')}`));
        break;
      case 'iteration-done': {
        const r = event.record;
        const q = r.quality === null ? '-' : r.quality.toFixed(2);
        const c = r.confidence === null ? '-' : r.confidence.toFixed(2);
        this.line(`${this.dim(this.elapsed())} [iteration ${r.index}] decision ${this.bold(r.decision)} (${r.decisionRule}) quality ${q} confidence ${c}${r.reason ? ` — ${r.reason}` : ''}`);
        for (const check of r.checks) this.line(`    check \`${check.command}\` → exit ${check.exitCode ?? 'timeout'} (${check.durationMs} ms)`);
        break;
      }
      case 'run-finished':
        this.stopCountdown();
        this.line(`${this.bold(`Run ${event.runId}: ${event.status}`)}${event.reason ? ` — ${event.reason}` : ''}`);
        break;
    }
  };

  dispose(): void {
    this.stopCountdown();
  }

  private startCountdown(dueAt: number): void {
    if (!this.tty) return;
    this.stopCountdown();
    this.countdown = setInterval(() => {
      const left = Math.max(0, dueAt - Date.now());
      this.out.write(`\r  waiting ${(left / 1000).toFixed(1)}s `);
    }, 100);
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
    return `+${((Date.now() - this.started) / 1000).toFixed(1)}s`.padStart(7);
  }

  private bold = (s: string) => (this.color ? `\x1b[1m${s}\x1b[22m` : s);
  private dim = (s: string) => (this.color ? `\x1b[2m${s}\x1b[22m` : s);
  private yellow = (s: string) => (this.color ? `\x1b[33m${s}\x1b[39m` : s);
}
