import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { configReference } from '../../docs/config-reference.js';
import { getPath, loadConfig, schemaLeaves } from '../../src/config/load.js';
import { defaultConfig } from '../../src/config/schema.js';
import { ROOT } from '../helpers/cli.js';

const committed = readFileSync(join(ROOT, 'docs/config-reference.md'), 'utf8');

/** The reference's rows: key → its cells (type, default, allowed, environment, description). */
function rows(markdown: string): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const line of markdown.split('\n')) {
    const cells = /^\| `([a-z_.]+)` \| (.*) \|$/.exec(line);
    if (cells) found.set(cells[1]!, cells[2]!.split(' | '));
  }
  return found;
}

describe('docs/config-reference.md, generated from the zod schema', () => {
  it('is what `npm run docs:config` makes of the schema now', () => {
    const generated = configReference();
    if (committed !== generated) {
      const [a, b] = [committed.split('\n'), generated.split('\n')];
      const line = a.findIndex((text, i) => text !== b[i]) + 1 || Math.min(a.length, b.length) + 1;
      expect.fail(`docs/config-reference.md is stale (it differs from the schema at line ${line}) — run \`npm run docs:config\` and commit it`);
    }
  });

  it('has a row for every key, each with a description, and nothing else', () => {
    const table = rows(committed);
    expect([...table.keys()].sort()).toEqual(schemaLeaves().sort());
    for (const [key, cells] of table) expect(cells[4]!.length, `${key}'s description`).toBeGreaterThan(10);
  });

  it("names each key's environment variable, which sets that key", () => {
    const defaults = defaultConfig() as unknown as Record<string, unknown>;
    const emptyDir = mkdtempSync(join(tmpdir(), 'obra-config-env-'));
    const table = rows(committed);
    expect(table.get('store.dir')![3]).toBe('`OBRA_STORE__DIR`, `OBRA_DB`');
    expect(table.get('agent.local.timeout')!.slice(0, 2)).toEqual(['duration', '`900` s']);
    for (const [key, cells] of table) {
      const value = getPath(defaults, key);
      if (value === undefined) continue;
      for (const name of cells[3]!.split(', ').map((cell) => cell.replace(/`/g, ''))) {
        const { sources } = loadConfig({ cwd: emptyDir, env: { [name]: JSON.stringify(value) } });
        expect(sources[key], `${name} sets ${key}`).toBe(`env ${name}`);
      }
    }
  });

  it('the example obra.yaml at the top of docs/configuration.md is a valid config', () => {
    const guide = readFileSync(join(ROOT, 'docs/configuration.md'), 'utf8');
    const example = guide.slice(guide.indexOf('```yaml\n') + 8, guide.indexOf('```', guide.indexOf('```yaml\n') + 8));
    const dir = mkdtempSync(join(tmpdir(), 'obra-config-example-'));
    writeFileSync(join(dir, 'obra.yaml'), example);
    const { config, sources } = loadConfig({ cwd: dir, env: {} });
    expect(config.task.checks).toEqual(['npm test', 'npx tsc --noEmit']);
    expect(Object.values(sources).filter((source) => source.startsWith('file ')).length).toBe(4);
  });

  it('refuses a key without a description, naming it and where to add one', () => {
    const schema = z.strictObject({ queue: z.strictObject({ concurrency: z.number().default(4).describe('How many.'), depth: z.number().default(1) }).prefault({}) });
    expect(() => configReference(schema)).toThrow("config key queue.depth has no description — add .describe('…') to it in src/config/schema.ts");
  });
});
