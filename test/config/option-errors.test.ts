import { describe, expect, it } from 'vitest';
import { obra, sandbox } from '../helpers/cli.js';

/**
 * Every numeric and enum option of the CLI: a bad value is one line that names the option, the value and what
 * is allowed (`obra: --flag: "value" is not ...`), exit 2, before anything runs.
 */
const CASES: [string[], string][] = [
  [['work', '--concurrency', 'abc'], 'obra: --concurrency: "abc" is not a whole number of at least 1'],
  [['work', '--concurrency', '0'], 'obra: --concurrency: "0" is not a whole number of at least 1'],
  [['worker', '--concurrency', '1.5'], 'obra: --concurrency: "1.5" is not a whole number of at least 1'],
  [['submit', '--task', 'x', '--priority', 'high'], 'obra: --priority: "high" is not a whole number'],
  [['submit', '--task', 'x', '--priority', ''], 'obra: --priority: "" is not a whole number'],
  [['run', '--task', 'x', '--max-iterations', 'ten'], 'obra: --max-iterations: "ten" is not a whole number of at least 1'],
  [['worker', '--port', '70000'], 'obra: --port: "70000" is not a port number from 0 to 65535 (0 picks a free one)'],
  [['view', '--port', 'http'], 'obra: --port: "http" is not a port number from 0 to 65535 (0 picks a free one)'],
  [['replay', 'r1', '--port', '-1'], 'obra: --port: "-1" is not a port number from 0 to 65535 (0 picks a free one)'],
  [['worker', '--park-after', '15x'], 'obra: --park-after: "15x" is not a duration — use 90, 90s, 15m, 8h or 2d'],
  [['demo', '--latency', 'fast'], 'obra: --latency: "fast" is not a duration — use 90, 90s, 15m, 8h or 2d'],
  [['demo', '--scenario', 'huge'], 'obra: --scenario: "huge" is not one of basic, checks, escalate'],
  [['status', '--engine', 'remote'], 'obra: --engine: "remote" is not one of local, restate'],
  [['cancel', 'r1', '--engine', 'Restate'], 'obra: --engine: "Restate" is not one of local, restate'],
  [['replay', 'r1', '--speed', '0'], 'obra: --speed: "0" is not a number above 0 (1 = real time)'],
  [['replay', 'r1', '--until', 'three'], 'obra: --until: "three" is not <iteration>.<state> (e.g. 3.scoring, 1.awaitingAgent) or task.<state> (e.g. task.awaitingHuman)'],
];

describe('a bad option value names the option', () => {
  it.each(CASES)('obra %j', async (args, message) => {
    const box = sandbox();
    const result = await obra(args, { cwd: box.dir, env: box.env });
    expect(result.stderr).toBe(message);
    expect(result.exitCode).toBe(2);
    expect(result.stdout).toBe('');
  });
});
