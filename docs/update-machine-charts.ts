/**
 * `npm run docs:machines`: rewrites the mermaid charts of docs/statecharts.md (between the `<!-- mermaid:<name>:start -->`
 * and `end` markers) from the machine definitions. `test/inspect/machines.test.ts` fails until this was run
 * after a machine changed.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { updateReadmeCharts } from '../src/graph/mermaid.js';

const readme = new URL('./statecharts.md', import.meta.url);
const before = readFileSync(readme, 'utf8');
const after = updateReadmeCharts(before);
if (after === before) {
  console.log('docs/statecharts.md: the machine charts are up to date');
} else {
  writeFileSync(readme, after);
  console.log('docs/statecharts.md: rewrote the machine charts from machines/*.machine.ts');
}
