import { resolve } from 'node:path';
import { workerBinaries } from '../core/agent-kinds.js';
import { EXIT_CODES } from '../core/statuses.js';
import type { EngineEvent } from '../engine/events.js';
import { RunLog } from '../logging/run-log.js';
import { denialMessage, usageLimitMessage } from '../logging/messages.js';
import { eventOfStatus, Notifier, NOTIFY_FLUSH_MS } from '../notify/notifier.js';
import { work, type WorkNews } from '../queue/worker.js';
import { configFrom, type CommonFlags } from './config-from.js';

/**
 * `obra work`: the queue's worker on the terminal — one line per thing that happens to a task (started, each
 * iteration's decision, waits, the end), each task's run.log as for `obra run`, Ctrl-C to stop (the tasks in
 * flight are saved as interrupted; the next `obra work` takes them on), and the notifications of the config's
 * `notify` section.
 */

export async function runWorker(flags: CommonFlags & { concurrency?: number; untilIdle?: boolean; agentBin?: string }): Promise<void> {
  const config = configFrom(flags);
  const storeDir = resolve(flags.db ?? config.store.dir);
  const concurrency = flags.concurrency ?? config.queue.concurrency;
  const quiet = Boolean(flags.quiet || flags.json);
  const say = (line: string) => {
    if (!quiet) process.stderr.write(`${line}\n`);
  };
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupts += 1;
    if (interrupts > 1) process.exit(130);
    say(`\nobra: ${signal} — stopping; the tasks in flight are saved and the next \`obra work\` takes them on (press again to quit at once)`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const notifier = new Notifier(config.notify, { bell: process.stderr, onWarning: (line) => say(`obra: WARNING ${line}`) });
  const tell = notifier.tell.bind(notifier, storeDir);
  const logs = new Map<string, RunLog>();
  const onEvent = (runId: string, event: EngineEvent) => {
    if (config.logging.file) {
      let log = logs.get(runId);
      if (!log) logs.set(runId, (log = new RunLog({ level: config.logging.level })));
      log.handle(event);
      if (event.type === 'run-finished') logs.delete(runId);
    }
    if (event.type === 'iteration-done') {
      const r = event.record;
      say(`[${runId}] iteration ${r.index}: ${r.decision} (${r.decisionRule})${r.quality === null ? '' : ` quality ${r.quality.toFixed(2)}`}${r.reason ? ` — ${r.reason}` : ''}`);
      for (const denial of r.permissionDenials ?? []) say(`[${runId}] DENIED ${denialMessage(denial)}`);
    } else if (event.type === 'usage-limit') {
      say(`[${runId}] WARNING ${usageLimitMessage(event)}: ${event.message}`);
      tell('parked', runId, 'waiting', `${usageLimitMessage(event)}: ${event.message}`);
    }
    else if (event.type === 'retry' && event.kind === 'rateLimited') say(`[${runId}] WARNING the API is rate limited: waiting ${(event.delayMs / 1000).toFixed(1)} s`);
    else if (event.type === 'agent-progress' && event.progress.kind === 'earlierCallStopped') say(`[${runId}] WARNING ${event.progress.message}`);
  };
  const onNews = (news: WorkNews) => {
    if (news.type === 'started') say(`${news.resumed ? 'resumed' : 'started'} ${news.runId}`);
    else if (news.type === 'finished') {
      say(`[${news.runId}] ${news.status}${news.reason ? ` — ${news.reason}` : ''}`);
      tell(eventOfStatus(news.status), news.runId, news.status, news.reason);
    } else if (news.type === 'blocked') {
      say(`[${news.runId}] blocked — ${news.reason}`);
      tell('failed', news.runId, 'blocked', news.reason);
    }
    else if (news.type === 'skipped') say(`[${news.runId}] not started: ${news.reason}`);
    else if (news.type === 'race-decided') {
      const said = news.winner ? `winner ${news.winner}` : 'no winner';
      say(`race ${news.raceId} decided: ${said} — ${news.reasons.join('; ')}`);
      // Told of the winner's run (its task, its page on the board), or of the race's first attempt.
      tell('race-decided', news.winner ?? `${news.raceId}-1`, news.winner ? 'done' : 'failed', `race ${news.raceId}: ${said} — ${news.reasons.join('; ')}`);
    }
    else if (news.type === 'idle') say(`${news.waiting} task${news.waiting === 1 ? '' : 's'} left waiting (for a run it follows, or a folder in use)`);
  };
  say(`obra work: store ${storeDir}, ${concurrency} at a time${flags.untilIdle ? ', until idle' : ' (Ctrl-C to stop)'}`);
  try {
    const result = await work({ storeDir, config, concurrency, untilIdle: flags.untilIdle, signal: controller.signal, agentCommand: workerBinaries(flags.agentBin, config.agent.kind, process.env), onEvent, onNews });
    if (flags.json) process.stdout.write(`${JSON.stringify({ results: result.results.map((r) => ({ runId: r.runId, status: r.status, reason: r.reason })), blocked: result.blocked, worst: result.worst }, null, 2)}\n`);
    const done = result.worst === null || result.worst === 'done';
    say(`obra work: ${result.results.length} task${result.results.length === 1 ? '' : 's'} driven${result.blocked.length ? `, ${result.blocked.length} blocked` : ''}${done ? '' : `; the worst ended ${result.worst}`}`);
    process.exitCode = controller.signal.aborted ? 130 : done ? 0 : EXIT_CODES[result.worst!];
  } finally {
    await notifier.flush(NOTIFY_FLUSH_MS);
    for (const log of logs.values()) log.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
