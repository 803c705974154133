import { html as diffHtml } from 'diff2html';
import { UserError } from '../core/errors.js';
import { RunStore } from '../store/run-store.js';
import { tryGit } from '../workspace/git.js';
import { diffOf, iterationTrailer } from '../workspace/worktree.js';
import { taskSpace } from './actions.js';

/**
 * The run page's review: the task's diff, whole or one iteration's (each iteration is a commit on the task's
 * branch, named by its `Obra-Iteration:` trailer), drawn by diff2html, beside what each iteration's checks printed
 * and why the judge decided as it did.
 */

export interface ReviewIteration {
  index: number;
  /** The iteration's commit on the task's branch, or null when it changed no file. */
  commit: string | null;
  decision: string;
  rule: string;
  /** The judge's reasons: the decision's, why the answer was not valid, how sure it was (the confidence explanation). */
  reasons: string[];
  checks: { command: string; exitCode: number | null; timedOut: boolean; output: string }[];
  costUsd: number;
}

export interface Review {
  runId: string;
  /** The iteration shown, or null for the whole task. */
  iteration: number | null;
  diff: string;
  /** The diff as HTML (diff2html, side by side off; every text of the diff escaped). */
  html: string;
  note: string | null;
  iterations: ReviewIteration[];
}

export async function reviewRun(runId: string, storeDir: string, iteration: number | null): Promise<Review> {
  const iterations = iterationsOf(runId, storeDir);
  const { space } = taskSpace(runId, storeDir);
  const commits = await iterationCommits(space.repo, runId, space.baseCommit, space.branch);
  for (const it of iterations) it.commit = commits.get(it.index) ?? null;
  let diff: string;
  let note: string | null = null;
  if (iteration === null) {
    diff = await diffOf(space);
    if (!diff) note = `run ${runId} has committed no change yet`;
  } else {
    const known = iterations.find((it) => it.index === iteration);
    if (!known) throw new UserError(`run ${runId} has no iteration ${iteration} (it has ${iterations.length ? iterations.map((it) => it.index).join(', ') : 'none yet'})`);
    const commit = commits.get(iteration);
    diff = commit ? (await tryGit(space.repo, ['diff', `${commit}^`, commit])).stdout : '';
    if (!commit) note = `iteration ${iteration} changed no file`;
  }
  const html = diff ? diffHtml(diff, { drawFileList: true, matching: 'lines', outputFormat: 'line-by-line' }) : '';
  return { runId, iteration, diff, html, note, iterations };
}

/** The iterations' records, as the review shows them. */
function iterationsOf(runId: string, storeDir: string): ReviewIteration[] {
  const handle = RunStore.open(storeDir, { create: false }).openRun(runId);
  try {
    return handle.readIterations().map((r) => ({
      index: r.index,
      commit: null,
      decision: r.decision,
      rule: r.decisionRule,
      reasons: [r.reason, ...(r.validation && !r.validation.ok ? r.validation.reasons.map((why) => `not valid: ${why}`) : []), ...r.confidenceExplanation].filter(Boolean),
      checks: r.checks.map((c) => ({ command: c.command, exitCode: c.exitCode, timedOut: c.timedOut, output: c.outputTail })),
      costUsd: r.costUsd,
    }));
  } finally {
    handle.close();
  }
}

/** Iteration index → its commit, from the branch's history since the task started. */
async function iterationCommits(repo: string, runId: string, from: string, branch: string): Promise<Map<number, string>> {
  const log = await tryGit(repo, ['log', '--format=%H%x00%B%x1e', `${from}..${branch}`]);
  const commits = new Map<number, string>();
  if (log.exitCode !== 0) return commits;
  for (const entry of log.stdout.split('\x1e')) {
    const [hash, body] = entry.trim().split('\x00');
    if (!hash || !body) continue;
    const index = /^Obra-Iteration: (.+)\/(\d+)$/m.exec(body);
    if (index && index[1] === runId && body.includes(iterationTrailer(runId, Number(index[2])))) commits.set(Number(index[2]), hash);
  }
  return commits;
}
