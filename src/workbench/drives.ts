import type { ObraConfig } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import type { EngineEvent } from '../engine/events.js';
import type { RunResult } from '../engine/run-result.js';
import type { Notifier } from '../notify/notifier.js';
import { usageLimitMessage } from '../logging/messages.js';
import { RunStore } from '../store/run-store.js';

/**
 * `answer` and `resume` for a long-lived process (the API of `obra view`, `obra mcp`): checked as `obra answer` and
 * `obra resume` check them, then the run is driven on in this process behind the caller's back — with its run.log
 * as the CLI writes it, and the notifications `obra work` sends. `close()` interrupts them (saved, resumable:
 * `obra work` or `obra resume` takes them on).
 */

export interface DrivesOptions {
  storeDir: string;
  config: ObraConfig;
  /** The Claude Code binary (default: the one each run was submitted with). */
  agentCommand?: string;
  /** A drive that failed after it was started. */
  onError: (runId: string, error: unknown) => void;
  /**
   * Tell of the runs it drives as `obra work` does (needs a human, done, failed, parked: the config's `notify`,
   * without the bell); a delivery given up on is a line for `onWarning`. Default: nobody is told.
   */
  notify?: { onWarning: (line: string) => void };
}

export interface DriveStarted {
  runId: string;
  status: 'running';
  message: string;
}

export class BackgroundDrives {
  private readonly stop = new AbortController();
  private readonly inFlight = new Set<Promise<unknown>>();
  private notifier: Promise<Notifier | null> | null = null;

  constructor(private readonly options: DrivesOptions) {}

  /** Answers a run that waits for a human (`allow`: permission rules granted for the rest of the run). */
  async answer(runId: string, answer: string, allow: string[] = []): Promise<DriveStarted> {
    const { checkAnswer, answerRun } = await import('../hosts/files/local.js');
    checkAnswer(runId, answer, { storeDir: this.options.storeDir, allow });
    this.drive(runId, (engine) => answerRun(runId, answer, { ...engine, allow }));
    return { runId, status: 'running', message: `answered run ${runId}; it goes on` };
  }

  /** Continues a paused or interrupted run. */
  async resume(runId: string): Promise<DriveStarted> {
    const { resumeRun } = await import('../hosts/files/local.js');
    const { status } = RunStore.open(this.options.storeDir, { create: false }).peekStatus(runId);
    if (status !== 'paused' && status !== 'interrupted') throw new UserError(`run ${runId} is ${status}: only a paused or interrupted run can be resumed${status === 'escalated' ? ' (answer it instead)' : ''}`);
    this.drive(runId, (engine) => resumeRun(runId, engine));
    return { runId, status: 'running', message: `resumed run ${runId}` };
  }

  /** Interrupts the drives in flight and waits until each has saved its run (and, a little, for its notifications). */
  async close(): Promise<void> {
    this.stop.abort();
    await Promise.allSettled([...this.inFlight]);
    const notifier = await this.notifier;
    if (notifier) await notifier.flush((await import('../notify/notifier.js')).NOTIFY_FLUSH_MS);
  }

  /** Made on the first drive (its module loads then), when the caller asked for notifications. */
  private notifierOf(): Promise<Notifier | null> {
    const notify = this.options.notify;
    this.notifier ??= notify ? import('../notify/notifier.js').then(({ Notifier }) => new Notifier(this.options.config.notify, { onWarning: notify.onWarning })) : Promise.resolve(null);
    return this.notifier;
  }

  private drive(runId: string, start: (engine: { storeDir: string; signal: AbortSignal; agentCommand?: string; onEvent: (event: EngineEvent) => void }) => Promise<RunResult>): void {
    const { config, storeDir, agentCommand } = this.options;
    let runLog: { handle: (event: EngineEvent) => void; close: () => void } | null = null;
    let notifier: Notifier | null = null;
    const onEvent = (event: EngineEvent) => {
      runLog?.handle(event);
      if (event.type === 'usage-limit') notifier?.tell(storeDir, 'parked', runId, 'waiting', `${usageLimitMessage(event)}: ${event.message}`);
    };
    const driving = (async () => {
      if (config.logging.file) runLog = new (await import('../logging/run-log.js')).RunLog({ level: config.logging.level });
      notifier = await this.notifierOf();
      const result = await start({ storeDir, signal: this.stop.signal, agentCommand, onEvent });
      if (notifier) {
        const { eventOfStatus } = await import('../notify/notifier.js');
        notifier.tell(storeDir, eventOfStatus(result.status), runId, result.status, result.reason);
      }
    })()
      .catch((error: unknown) => this.options.onError(runId, error))
      .finally(() => {
        runLog?.close();
        this.inFlight.delete(driving);
      });
    this.inFlight.add(driving);
  }
}
