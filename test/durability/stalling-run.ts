/**
 * A run that freezes at a chosen step, for the fault test to SIGKILL it there: `obra run` as a script, on the
 * files host, whose journal is wrapped (the engine's `journal` option) so that right after the entry entering
 * `<iteration>.<state>` (or `task.<state>`) is durable the process stops dead — as if the machine died in that
 * state. The computing states last microseconds; this is how a kill lands in one of them.
 *
 *   node --import <tsx> test/durability/stalling-run.ts <stall-at> <task> <agent-bin>
 *
 * The config comes from obra.yaml and OBRA_* in the environment, like the CLI's; the store is ./.obra.
 */
import { loadConfig } from '../../src/config/load.js';
import type { JournalPort } from '../../src/engine/host.js';
import { agentFromConfig, runTask } from '../../src/index.js';

const [stallAt, task, agentBin] = process.argv.slice(2);
if (!stallAt || !task || !agentBin) throw new Error('usage: stalling-run.ts <iteration.state | task.state> <task> <agent-bin>');

const config = loadConfig({ flags: { values: { agent: { local: { command: agentBin } } }, names: {} } }).config;

function stallingAt(spec: string) {
  return (journal: JournalPort): JournalPort => ({
    add(step, options) {
      const seq = journal.add(step, options);
      const at = step.actor === 'task' ? `task.${String(step.task)}` : step.iteration ? `${step.iteration.index}.${String(step.iteration.state)}` : '';
      if (at === spec) {
        // The entry is on disk, durable; then nothing more happens: not the next step, not its effects.
        journal.commit(true);
        process.stderr.write(`stalled in ${spec}, waiting to be killed\n`);
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
      }
      return seq;
    },
    marker: (at, event) => journal.marker(at, event),
    get hasPending() {
      return journal.hasPending;
    },
    commit: (sync) => journal.commit(sync),
    restart: () => journal.restart(),
  });
}

const result = await runTask({ task, config, agent: agentFromConfig(config), storeDir: '.obra', journal: stallingAt(stallAt) });
process.stdout.write(`${JSON.stringify(result)}\n`);
