import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { obra, sandbox } from '../helpers/cli.js';
import { gitRepo } from '../queue/helpers.js';

/** What `obra submit` refuses of a race, in one line each, queueing nothing. */
describe('a race refused', () => {
  it('names the problem and the fix, and writes nothing', async () => {
    const box = sandbox();
    mkdirSync(join(box.dir, 'plain'));
    await gitRepo(join(box.dir, 'repo'));
    const at = { cwd: box.dir, env: box.env };
    const cases: [string[], string][] = [
      [['--agents', 'claude,codex', '--repo', 'plain'], `obra: a race needs a git repository: each attempt works in a worktree and on a branch of its own, and ${join(box.dir, 'plain')} is not in one`],
      [['--agents', 'claude,cursor', '--repo', 'repo'], 'obra: --agents: "claude,cursor" is not a comma-separated list of claude, codex, gemini, qwen, opencode ("cursor" is none of them)'],
      [['--agents', 'claude,codex', '--agent', 'codex', '--repo', 'repo'], 'obra: give either --agent or --agents, not both'],
      [['--attempts', '0', '--repo', 'repo'], 'obra: --attempts: "0" is not a whole number of at least 1'],
      // On Restate each attempt needs a branch of its own (its worker's checkout of --repo-url), not a shared folder.
      [['--attempts', '2', '--repo', 'repo', '--engine', 'restate'], 'obra: a race on Restate needs --repo-url: each attempt works on a branch of its own (obra/<runId>), and a --repo folder would be shared by all of them'],
    ];
    for (const [flags, message] of cases) {
      const r = await obra(['submit', '--task', 'Race it', '--db', 'store', ...flags], at);
      expect([r.exitCode, r.stderr]).toEqual([2, message]);
    }
    expect(readdirSync(join(box.dir, 'store', 'runs'))).toEqual([]);
  }, 30_000);
});
