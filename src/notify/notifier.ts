import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { execa } from 'execa';
import type { ObraConfig } from '../config/schema.js';
import type { RunStatus } from '../core/statuses.js';
import { RunStore } from '../store/run-store.js';

/**
 * Tells people what happened to a task: a JSON POST to each webhook (retried with backoff), a desktop
 * notification through `notify-send` where it exists, and the terminal's bell. Everything is sent behind the
 * caller's back: `notify` returns at once, a receiver that never answers costs a task nothing, and a delivery
 * that fails for good is one warning line.
 */

/** How long a process that ends waits for notifications still being delivered (`obra work`, a closing server). */
export const NOTIFY_FLUSH_MS = 5000;

export type NoticeEvent = 'needs-human' | 'done' | 'failed' | 'parked' | 'race-decided';

export interface Notice {
  event: NoticeEvent;
  runId: string;
  task: string;
  status: RunStatus | 'waiting';
  reason: string;
}

/** What a webhook receives. */
export interface NoticeBody extends Notice {
  /** The task's page on the board (`obra view`). */
  link: string;
  at: string;
}

/** The notice a run's end brings, or null for one nobody needs to hear of (paused, cancelled, interrupted). */
export function eventOfStatus(status: RunStatus): NoticeEvent | null {
  if (status === 'done') return 'done';
  if (status === 'escalated') return 'needs-human';
  if (status === 'failed' || status === 'max_iterations' || status === 'budget_exceeded' || status === 'blocked') return 'failed';
  return null;
}

export interface NotifierOptions {
  /** The terminal to ring (default: none). */
  bell?: NodeJS.WriteStream | null;
  /** A delivery given up on, in one line. */
  onWarning?: (line: string) => void;
  /** The `notify-send` binary (default: found on PATH). */
  desktopCommand?: string | null;
}

export class Notifier {
  private readonly pending = new Set<Promise<void>>();
  private readonly desktop: string | null;
  private readonly stop = new AbortController();

  constructor(
    private readonly config: ObraConfig['notify'],
    private readonly options: NotifierOptions = {},
  ) {
    this.desktop = config.desktop ? (options.desktopCommand === undefined ? onPath('notify-send') : options.desktopCommand) : null;
  }

  /** Whether anything would be sent at all. */
  get enabled(): boolean {
    return this.config.webhooks.length > 0 || this.desktop !== null || this.ringsBell;
  }

  private get ringsBell(): boolean {
    return this.config.bell && Boolean(this.options.bell?.isTTY);
  }

  notify(notice: Notice): void {
    const body: NoticeBody = { ...notice, link: `${this.config.link.replace(/\/+$/, '')}/runs/${encodeURIComponent(notice.runId)}`, at: new Date().toISOString() };
    if (this.ringsBell) this.options.bell!.write('\x07');
    for (const url of this.config.webhooks) this.track(this.post(url, body));
    if (this.desktop) this.track(this.showOnDesktop(this.desktop, body));
  }

  /** Tells of a run of `storeDir` (its task read from the store); nothing for a null event. */
  tell(storeDir: string, event: NoticeEvent | null, runId: string, status: Notice['status'], reason: string): void {
    if (!event || !this.enabled) return;
    let task = '';
    try {
      task = RunStore.open(storeDir, { create: false }).peekStatus(runId).file.task.text;
    } catch {
      // An unreadable run is still worth telling about, by its id.
    }
    this.notify({ event, runId, task, status, reason });
  }

  /** Waits for the deliveries in flight, at most `ms`; the rest are dropped (said in a warning). */
  async flush(ms: number): Promise<void> {
    if (!this.pending.size) return;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), ms)));
    const late = await Promise.race([Promise.allSettled([...this.pending]).then(() => false), timedOut]);
    clearTimeout(timer);
    if (late) {
      this.options.onWarning?.(`${this.pending.size} notification${this.pending.size === 1 ? '' : 's'} still undelivered after ${(ms / 1000).toFixed(0)} s: given up`);
      this.stop.abort();
    }
  }

  private track(delivery: Promise<void>): void {
    const tracked = delivery.catch(() => {}).finally(() => this.pending.delete(tracked));
    this.pending.add(tracked);
  }

  private async post(url: string, body: NoticeBody): Promise<void> {
    const retries = this.config.webhook_retries;
    let problem = '';
    for (let attempt = 0; attempt <= retries && !this.stop.signal.aborted; attempt++) {
      if (attempt > 0) await sleep(this.config.webhook_retry_delay * 1000 * 2 ** (attempt - 1), this.stop.signal);
      try {
        const response = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'obra' },
          body: JSON.stringify(body),
          signal: AbortSignal.any([AbortSignal.timeout(this.config.webhook_timeout * 1000), this.stop.signal]),
        });
        await response.body?.cancel();
        if (response.ok) return;
        problem = `it answered ${response.status}`;
        // Only a server's trouble is worth another try: a 4xx says the request itself is refused.
        if (response.status < 500 && response.status !== 429) break;
      } catch (error) {
        problem = (error as Error).name === 'TimeoutError' ? `no answer within ${this.config.webhook_timeout} s` : `${(error as Error).message}${(error as { cause?: Error }).cause ? ` (${(error as { cause?: Error }).cause!.message})` : ''}`;
      }
    }
    if (!this.stop.signal.aborted) this.options.onWarning?.(`the webhook ${url} did not take the ${body.event} notice of ${body.runId}: ${problem}`);
  }

  private async showOnDesktop(command: string, body: NoticeBody): Promise<void> {
    const title = { 'needs-human': 'Obra: a task needs you', done: 'Obra: a task is done', failed: 'Obra: a task failed', parked: 'Obra: a task waits for a usage limit', 'race-decided': 'Obra: a race is decided' }[body.event];
    await execa(command, ['--app-name=obra', title, `${body.task.slice(0, 200)}\n${body.reason}`.trim()], { timeout: 5000, reject: false, cancelSignal: this.stop.signal });
  }
}

function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not here
    }
  }
  return null;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}
