/**
 * `npm run docs:config`: writes docs/config-reference.md from the zod schema (src/config/schema.ts).
 * test/docs/config-reference.test.ts fails until this was run after the schema changed.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { configReference } from './config-reference.js';

const file = new URL('./config-reference.md', import.meta.url);
const before = readFileSync(file, 'utf8');
const after = configReference();
if (after === before) {
  console.log('docs/config-reference.md: up to date');
} else {
  writeFileSync(file, after);
  console.log('docs/config-reference.md: rewrote it from src/config/schema.ts');
}
