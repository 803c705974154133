import type { CheckResult, ConflictGate } from '../core/types.js';
import { conflictMarkersLeft, describeMarkedFiles, stillMerging } from '../workspace/conflict.js';

/**
 * The check Obra adds itself to a task that resolves a merge conflict (`obra merge --resolve`): no conflict
 * marker may be left. It is evidence like the user's checks (recorded with them, failing it fails the checks),
 * and a hard gate: a resolution that says it is done with markers left waits for a human (the DecisionEngine's
 * `conflictMarkersLeft`), the files named in the question.
 */

/** How the gate is named among the checks of an iteration's record. */
export const CONFLICT_GATE_CHECK = 'obra: no conflict markers left';

export async function runConflictGate(workdir: string, gate: ConflictGate): Promise<CheckResult> {
  const started = Date.now();
  // An aborted (or reset) merge has no markers, and none of the task's changes either.
  if (gate.tip && !(await stillMerging(workdir, gate.tip))) {
    return {
      command: CONFLICT_GATE_CHECK,
      exitCode: 1,
      durationMs: Date.now() - started,
      timedOut: false,
      outputTail: `the merge of ${gate.tip.slice(0, 12)} is no longer in progress (aborted or reset?): the worktree does not hold the task's changes — merge it again with \`git merge --no-commit ${gate.tip}\``,
    };
  }
  const marked = await conflictMarkersLeft(workdir, gate);
  return {
    command: CONFLICT_GATE_CHECK,
    exitCode: marked.length ? 1 : 0,
    durationMs: Date.now() - started,
    timedOut: false,
    outputTail: marked.length
      ? `conflict markers (<<<<<<<, =======, >>>>>>>) are left in ${describeMarkedFiles(marked)}`
      : `no conflict marker left in the files the merge touches`,
    ...(marked.length ? { paths: marked.map((f) => f.path) } : {}),
  };
}
