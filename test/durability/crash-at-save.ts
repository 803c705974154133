/**
 * A queued worktree task driven as `obra work` would (`resumeRun` on the store in ./.obra), which stops dead right
 * before it writes its first iteration record — the agent's answer is in the journal, nothing of the save is
 * done — for the exactly-once test to SIGKILL it there. The stop is in the store's file-system seam.
 *
 *   node --import <tsx> test/durability/crash-at-save.ts <runId> <agent-bin>
 */
import { resumeRun } from '../../src/index.js';
import { recordingFs } from '../helpers/store-fs.js';

const [runId, agentBin] = process.argv.slice(2);
if (!runId || !agentBin) throw new Error('usage: crash-at-save.ts <runId> <agent-bin>');

const { fs } = recordingFs((op, path) => {
  if ((op === 'write' || op === 'fill') && path.endsWith('iterations.jsonl')) {
    process.stderr.write('stalled before the record, waiting to be killed\n');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  }
  return null;
});
await resumeRun(runId, { storeDir: '.obra', agentCommand: agentBin, fs });
