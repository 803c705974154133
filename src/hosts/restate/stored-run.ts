import type { IterationRecord } from '../../core/types.js';
import { resultFrom, type RunResult } from '../../engine/run-result.js';
import { replayJournal, type ReplayOptions, type ReplayResult } from '../../replay/replay.js';
import { Journal } from '../../store/journal.js';
import { RestateClient, urlsText, type RestateUrls } from './client.js';
import type { RemoteRun } from './model.js';
import { RestateLog } from './restate-run.js';
import { UserError } from '../../core/errors.js';

/** A run as Restate keeps it — its record, its whole journal, its iteration records — read through the ingress. */
export async function loadRemoteRun(runId: string, urls: RestateUrls): Promise<{ run: RemoteRun; journal: Journal; iterations: IterationRecord[] }> {
  const client = new RestateClient(urls);
  await client.checkServing();
  const kept = await client.task<{ run: RemoteRun; lines: string[]; iterations: IterationRecord[] } | null>(runId, 'everything');
  if (!kept) throw new UserError(`no run "${runId}" in Restate at ${urlsText(urls.ingressUrl)} — \`obra status --engine restate\` lists them`);
  const journal = new Journal(`Restate ObraTask/${runId}`, undefined, new RestateLog(() => Promise.reject(new Error('read only')), kept.lines));
  return { run: kept.run, journal, iterations: kept.iterations };
}

/** `obra replay --engine restate`: the run's journal from Restate through the same statecharts, verified step by step. */
export async function replayRemoteRun(runId: string, urls: RestateUrls, options: ReplayOptions = {}): Promise<ReplayResult> {
  const { run, journal, iterations } = await loadRemoteRun(runId, urls);
  return replayJournal({ runId, entries: journal.entries({ markers: true }), config: run.config, input: run.input, where: journal.path, records: iterations }, options);
}

/** `obra show --engine restate --json`: the run as the library reports a local one. */
export async function remoteResult(runId: string, urls: RestateUrls): Promise<RunResult> {
  const { run, journal, iterations } = await loadRemoteRun(runId, urls);
  return resultFrom({ ...run, store: `Restate at ${urls.ingressUrl}`, records: iterations, latest: journal.latest().entry?.snapshot ?? null });
}
