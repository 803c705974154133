import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT_CODES, MERGE_CONFLICT_EXIT_CODE, USAGE_EXIT_CODE } from '../../src/core/statuses.js';
import { ROOT } from '../helpers/cli.js';

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

describe('the README', () => {
  it('stays short enough to read: at most 300 lines (the rest is in docs/)', () => {
    expect(readme.split('\n').length).toBeLessThanOrEqual(300);
  });

  it('lists every exit code the CLI can end with, each with its status', () => {
    const table = new Map([...readme.matchAll(/^\| (\d+) \| (.+) \|$/gm)].map((row) => [Number(row[1]), row[2]!]));
    for (const [status, code] of Object.entries(EXIT_CODES)) expect(table.get(code), `exit ${code}`).toContain(`\`${status}\``);
    expect(table.get(USAGE_EXIT_CODE)).toMatch(/^bad input/);
    expect(table.get(MERGE_CONFLICT_EXIT_CODE)).toMatch(/^`conflict`/);
    expect(table.get(70)).toMatch(/^an internal error/);
  });
});
