import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { obra, sandbox } from '../helpers/cli.js';

/** A YAML syntax error is `obra: <file>:<line>:<col>: <message>`, one line, no dangling "at line …, column …:". */
describe('a YAML syntax error shows the file, line and column', () => {
  const cases: [string, string, string][] = [
    ['an unclosed list', 'agent:\n  local:\n    max_retries: 3\n  bad: [1, 2\n', '5:1: Flow sequence in block collection must be sufficiently indented and end with a ]'],
    ['a tab as indentation', 'task:\n\tmax_iterations: 3\n', '2:1: Tabs are not allowed as indentation'],
    ['a mapping inside a compact one', 'task: max_iterations: 3\n', '1:7: Nested mappings are not allowed in compact mappings'],
    ['a key twice', 'engine: local\nengine: restate\n', '2:1: Map keys must be unique'],
  ];

  it.each(cases)('obra.yaml with %s', async (_label, yaml, where) => {
    const box = sandbox();
    const file = join(box.dir, 'obra.yaml');
    writeFileSync(file, yaml);
    const result = await obra(['config'], { cwd: box.dir, env: box.env });
    expect(result.stderr).toBe(`obra: ${file}:${where}`);
    expect(result.exitCode).toBe(2);
  });

  it('a --config file, for any command', async () => {
    const box = sandbox();
    const file = join(box.dir, 'other.yaml');
    writeFileSync(file, 'agent:\n  local: [\n');
    const result = await obra(['run', '--task', 'x', '--config', file], { cwd: box.dir, env: box.env });
    expect(result.stderr).toBe(`obra: ${file}:3:1: Flow sequence in block collection must be sufficiently indented and end with a ]`);
    expect(result.exitCode).toBe(2);
  });

  it('a tasks file of obra submit --file', async () => {
    const box = sandbox();
    const file = join(box.dir, 'tasks.yaml');
    writeFileSync(file, '- task: Add a README\n  checks: [npm test\n');
    const result = await obra(['submit', '--file', file], { cwd: box.dir, env: box.env });
    expect(result.stderr).toBe(`obra: ${file}:3:1: Flow sequence in block collection must be sufficiently indented and end with a ]`);
    expect(result.exitCode).toBe(2);
  });
});
