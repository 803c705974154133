import { configSchema } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import { isFinalStatus, MERGE_CONFLICT_EXIT_CODE, RESOLUTION_PENDING_EXIT_CODE, type RunStatus } from '../core/statuses.js';
import type { QueueEntry, RunFile } from '../persisted/run-file.js';
import { RunStore } from '../store/run-store.js';
import { conflictHunks, resolvedMergeCommit, trialMerge, type TrialMerge } from '../workspace/conflict.js';
import { git, tryGit } from '../workspace/git.js';
import { abortFailedMerge, checkoutClean, checkoutOnBase, type WorktreeSpace } from '../workspace/worktree.js';
import { recordMerged } from './record-merged.js';
import { submitTasks } from './submit.js';

/**
 * A conflicting landing resolved by an agent (`obra merge --resolve`, `merge.resolve: agent`): the conflict
 * becomes a queued task of its own, linked both ways with the task it lands (`queue.resolves` on it,
 * `queue.resolution` on the task). Its branch starts at the base; when a worker starts it, its worktree holds
 * the task's branch being merged into the base, stopped at the conflicts (src/hosts/files/local.ts). Its prompt
 * carries the hunks and both sides' intent; it is judged with the task's checks and Obra's conflict gate
 * (src/scoring/conflict-gate.ts). Once it is done, `obra merge <task>` lands the resolved merge: the base
 * fast-forwards to one merge commit of the base and the task's branch, with the resolved tree.
 *
 * Why the task is merged into the base, not the base into the task: the resolved merge's first parent is the
 * base, as for a clean `obra merge`, so `git log --first-parent` of the base stays the list of its landings, and
 * the base can fast-forward to it (it moves only when the resolution is done and its checks pass).
 */

export interface ResolutionStarted {
  /** The run that resolves the conflict. */
  runId: string;
  /** The files that conflict. */
  files: string[];
  /** It was started before and is still under way: nothing new was queued. */
  already: boolean;
}

/**
 * Queues the resolution of a task's conflict with its base branch (the queue calls this on a conflict too).
 * `base` is the branch it lands on (default: the one the task started from); `conflict` is what the caller saw
 * (the trial merge here decides). A resolution under way is returned, not started twice.
 */
export async function startResolution(options: { storeDir: string; task: string; base?: string; conflict?: { files: string[] } }): Promise<ResolutionStarted> {
  const store = RunStore.open(options.storeDir, { create: false });
  const { file } = store.peekStatus(options.task);
  const { space, queue } = worktreeOf(file);
  const earlier = queue.resolution ? liveResolution(store, queue.resolution.runId) : null;
  if (earlier && !isFinalStatus(earlier.status)) return { runId: queue.resolution!.runId, files: earlier.file?.queue?.resolves?.files ?? [], already: true };
  if (earlier?.status === 'done' && !queue.merged) {
    throw new UserError(`run ${queue.resolution!.runId} has resolved the conflict of ${space.branch} already — land it with \`obra merge ${options.task}\``);
  }
  const baseBranch = options.base ?? space.baseBranch;
  if (!baseBranch) throw new UserError(`run ${options.task} started from ${space.base}, not from a branch: there is no branch to land it on`);
  const baseCommit = await commitOf(space.repo, `refs/heads/${baseBranch}`);
  const tip = await commitOf(space.repo, `refs/heads/${space.branch}`);
  const merge = await trialMerge(space.repo, baseCommit, tip);
  if (merge.clean) throw new UserError(`${space.branch} merges cleanly into ${baseBranch} now — land it with \`obra merge ${options.task}\``);

  const parsed = configSchema.safeParse(file.config);
  if (!parsed.success) throw new UserError(`${store.runDir(options.task)}/run.json holds a config this Obra cannot read; resolve the conflict yourself (\`git -C ${space.repo} merge ${space.branch}\`)`);
  const config = parsed.data;
  // The task's checks are the resolution's evidence (they hold the config's already: not added twice).
  config.task.checks = file.task.checks;
  if (file.agent.name === 'claude-code' && typeof file.agent.command === 'string') config.agent = { ...config.agent, local: { ...config.agent.local, command: file.agent.command } };
  const text = await resolutionPrompt(store, { runId: options.task, file, space, baseBranch, baseCommit, tip, merge });
  const [runId] = await submitTasks(
    [{ task: text, repo: space.repo, base: baseBranch, priority: queue.priority, ...(file.agent.kind ? { agentKind: file.agent.kind } : {}), resolves: { runId: options.task, branch: space.branch, tip, files: merge.files } }],
    { config, storeDir: store.dir },
  );
  const handle = store.openRun(options.task);
  try {
    handle.update({ queue: { ...(handle.file.queue as QueueEntry), resolution: { runId: runId!, at: new Date().toISOString() } } });
  } finally {
    handle.close();
  }
  return { runId: runId!, files: merge.files, already: false };
}

/** A task's resolution, when it has one that has not landed yet: its run and status. */
export function pendingResolution(storeDir: string, queue: QueueEntry): { runId: string; status: RunStatus } | null {
  if (!queue.resolution || queue.merged) return null;
  const found = liveResolution(RunStore.open(storeDir, { create: false }), queue.resolution.runId);
  return found ? { runId: queue.resolution.runId, status: found.status } : null;
}

/** The resolution run, unless it is gone or its branch was discarded (then a new one may start). */
function liveResolution(store: RunStore, runId: string): { status: RunStatus; file: RunFile | null } | null {
  const found = statusOf(store, runId);
  return found && !found.file?.queue?.discarded ? found : null;
}

/**
 * Lands a done resolution: one merge commit (the base the resolution started from, the task's tip; the resolved
 * tree), onto which the base branch fast-forwards in the user's checkout — or, when the base moved since, merged
 * like any branch (a new conflict is exit 11: resolve it again). Records the landing on both runs.
 */
export async function landResolution(options: { storeDir: string; task: string }): Promise<{ commit: string; resolvedBy: string; message: string }> {
  const store = RunStore.open(options.storeDir, { create: false });
  const { space, queue } = worktreeOf(store.peekStatus(options.task).file);
  const resolvedBy = queue.resolution!.runId;
  const resolution = store.peekStatus(resolvedBy).file;
  const resolves = resolution.queue?.resolves;
  const resolutionSpace = resolution.queue?.workspace;
  if (!resolves || resolutionSpace?.kind !== 'worktree' || resolution.queue?.discarded) throw new UserError(`run ${resolvedBy} holds no resolution of ${space.branch} any more (discarded?) — start one again with \`obra merge --resolve ${options.task}\``);
  await checkoutOnBase(space, options.task);
  await checkoutClean(space);
  const tip = await commitOf(space.repo, `refs/heads/${space.branch}`);
  if (tip !== resolves.tip) {
    throw new UserError(`${space.branch} moved since run ${resolvedBy} resolved its conflict (it resolved ${resolves.tip.slice(0, 12)}) — resolve it again with \`obra merge --resolve ${options.task}\`; nothing was changed`);
  }
  const message = `Merge ${space.branch} (obra run ${options.task}; conflicts resolved by obra run ${resolvedBy})`;
  const commit = await resolvedMergeCommit(space.repo, { resolved: await commitOf(space.repo, `refs/heads/${resolutionSpace.branch}`), base: resolutionSpace.baseCommit, tip, message });
  const head = await commitOf(space.repo, 'HEAD');
  const landed = head === resolutionSpace.baseCommit ? await tryGit(space.repo, ['merge', '--ff-only', commit]) : await tryGit(space.repo, ['merge', '--no-ff', '--no-edit', '-m', message, commit]);
  if (landed.exitCode !== 0) {
    const { conflicts, gitSaid } = await abortFailedMerge(space.repo, landed);
    const why = conflicts.length ? `${space.baseBranch} moved since and conflicts with it in ${conflicts.join(', ')}` : gitSaid;
    throw new UserError(`cannot land run ${resolvedBy}'s resolution of ${space.branch}: ${why} — nothing was changed; resolve it again with \`obra merge --resolve ${options.task}\``, MERGE_CONFLICT_EXIT_CODE);
  }
  const landedAt = await commitOf(space.repo, 'HEAD');
  const at = new Date().toISOString();
  for (const runId of [options.task, resolvedBy]) recordMerged(store, runId, landedAt, at);
  const how = landedAt === commit ? 'fast-forward' : 'merged, the base had moved';
  return { commit: landedAt, resolvedBy, message: `merged ${space.branch} into ${space.baseBranch} in ${space.repo} (${landedAt.slice(0, 12)}; conflicts resolved by run ${resolvedBy}, ${how})` };
}

/** The exit code and words for a landing that waits for its resolution. */
export function resolutionPending(task: string, branch: string, base: string | null, pending: { runId: string; status: RunStatus }): UserError {
  return new UserError(
    `the conflict of ${branch} with ${base ?? 'its base'} is being resolved by run ${pending.runId} (${pending.status}) — \`obra merge ${task}\` lands it once that run is done; nothing was changed`,
    RESOLUTION_PENDING_EXIT_CODE,
  );
}

function worktreeOf(file: RunFile): { space: WorktreeSpace; queue: QueueEntry } {
  const space = file.queue?.workspace;
  if (!file.queue || space?.kind !== 'worktree') throw new UserError(`run ${file.runId} has no worktree of its own: there is no branch to land`);
  if (file.queue.discarded) throw new UserError(`run ${file.runId}'s worktree and branch were discarded`);
  return { space, queue: file.queue };
}

function statusOf(store: RunStore, runId: string): { status: RunStatus; file: RunFile | null } | null {
  try {
    return store.peekStatus(runId);
  } catch {
    return null;
  }
}

async function commitOf(repo: string, ref: string): Promise<string> {
  return (await git(repo, ['rev-parse', '--verify', `${ref}^{commit}`], `read ${ref}`)).trim();
}

const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/** The task's last answer (its summary of what it did), or null. */
function lastAnswerOf(store: RunStore, runId: string): string | null {
  try {
    const handle = store.openRun(runId);
    try {
      const last = handle.readIterations().filter((record) => record.validation?.answer).at(-1);
      // The agent's summary, without its STATUS line (that was for Obra).
      return last?.validation?.answer?.split('\n').filter((line) => !/^\s*STATUS:/.test(line)).join('\n').trim() || null;
    } finally {
      handle.close();
    }
  } catch {
    return null;
  }
}

/** Obra tasks whose landing on the base came after the task's branch left it: the other side's intent. */
async function landedSince(store: RunStore, repo: string, since: string, baseCommit: string, except: string): Promise<{ runId: string; text: string }[]> {
  const commits = new Set((await tryGit(repo, ['rev-list', `${since}..${baseCommit}`])).stdout.split('\n').filter(Boolean));
  if (!commits.size) return [];
  const found: { runId: string; text: string; at: string }[] = [];
  for (const runId of store.listRunIds()) {
    if (runId === except) continue;
    const file = statusOf(store, runId)?.file;
    const merged = file?.queue?.merged;
    if (!file || !merged || !commits.has(merged.commit) || file.queue?.workspace.kind !== 'worktree' || file.queue.workspace.repo !== repo) continue;
    found.push({ runId, text: file.task.text, at: merged.at });
  }
  return found.sort((a, b) => (a.at < b.at ? 1 : -1)).slice(0, 4);
}

/**
 * The resolution's task text: what to do, the conflicts (git's words and the hunks), and both sides' intent —
 * the task's text and last answer; the tasks that landed on the base since, with theirs; the base's commits.
 * Kept under the prompt's share of `context.max_chars` (the agent reads the files for the rest).
 */
async function resolutionPrompt(
  store: RunStore,
  s: { runId: string; file: RunFile; space: WorktreeSpace; baseBranch: string; baseCommit: string; tip: string; merge: TrialMerge },
): Promise<string> {
  const { space, baseBranch, merge } = s;
  const forkPoint = (await tryGit(space.repo, ['merge-base', s.baseCommit, s.tip])).stdout.trim();
  const { hunks, cut } = await conflictHunks(space.repo, merge, { maxChars: 3500 });
  const checks = s.file.task.checks;
  const parts = [
    `Resolve the merge conflict of run ${s.runId}: its branch ${space.branch} conflicts with ${baseBranch}.`,
    `You are in a worktree of ${baseBranch} (at ${s.baseCommit.slice(0, 12)}) where ${space.branch} is being merged in: git stopped at the conflicts. ` +
      'Resolve every conflict so that the result does what both sides meant: edit the conflicted files and leave no `<<<<<<<`, `=======` or `>>>>>>>` line in any file; ' +
      'a file deleted on one side and changed on the other is kept (with the change) or deleted, as the two intents call for. ' +
      'Change nothing else, do not commit and do not abort the merge: Obra commits your work after each answer.' +
      (checks.length ? ` The result must pass the task's checks: ${checks.map((c) => `\`${c}\``).join(', ')}.` : ''),
    `## The conflicts\n\n${merge.messages.join('\n') || `conflicted: ${merge.files.join(', ')}`}` +
      (hunks.length ? `\n\nIn each hunk below (numbered as in the file), the side after \`<<<<<<<\` is ${baseBranch}'s, the side before \`>>>>>>>\` is ${space.branch}'s.` : ''),
    ...hunks.map((h) => `### ${h.path}\n\n\`\`\`\n${h.text}\n\`\`\``),
    ...(cut ? ['(more conflicts than shown here: open the files listed above)'] : []),
  ];
  const answer = lastAnswerOf(store, s.runId);
  parts.push(`## What ${space.branch} meant (run ${s.runId})\n\nIts task: ${clip(s.file.task.text, 800)}${answer ? `\n\nIts last answer: ${clip(answer, 600)}` : ''}`);
  const others = forkPoint ? await landedSince(store, space.repo, forkPoint, s.baseCommit, s.runId) : [];
  const otherSide = others.map((o) => {
    const theirs = lastAnswerOf(store, o.runId);
    return `- run ${o.runId}: ${clip(o.text, 400)}${theirs ? `\n  Its last answer: ${clip(theirs.replace(/\n+/g, ' '), 400)}` : ''}`;
  });
  const log = forkPoint ? (await tryGit(space.repo, ['log', '--format=%h %s', '-n', '15', `${forkPoint}..${s.baseCommit}`])).stdout.trim() : '';
  parts.push(
    `## What ${baseBranch} holds that ${space.branch} does not\n\n` +
      (otherSide.length ? `Tasks that landed on ${baseBranch} since ${space.branch} started:\n${otherSide.join('\n')}\n\n` : '') +
      (log ? `Its commits since then, newest first:\n${log}` : '(no commit message to go by)'),
  );
  return parts.join('\n\n');
}
