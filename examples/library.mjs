// Drive a task from a Node script with your own agent: here an in-process scripted one.
// Run with: node examples/library.mjs [storeDir]
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, runTask, ScriptedAgent } from 'obra';

const storeDir = process.argv[2] ?? mkdtempSync(join(tmpdir(), 'obra-example-'));
const { config } = loadConfig({ flags: { values: { task: { max_iterations: 5 } }, names: {} } });

const agent = new ScriptedAgent([
  'Added parseCsv() in src/csv.js.\nSTATUS: CONTINUE',
  'Added tests for quoted fields; they pass.\nSTATUS: DONE',
]);

const result = await runTask({
  task: 'Add a CSV parser',
  workdir: storeDir,
  storeDir,
  config,
  agent,
  onEvent: (event) => {
    if (event.type === 'iteration-done') console.error(`iteration ${event.record.index}: ${event.record.decision}`);
  },
});

console.log(JSON.stringify({ status: result.status, iterations: result.iterations.map((i) => ({ index: i.index, decision: i.decision, states: i.states.length })) }));
