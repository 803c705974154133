import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { durationOption } from '../../src/cli/option-parsers.js';
import { flagLayer } from '../../src/config/flags.js';
import { getPath, loadConfig, schemaLeaves } from '../../src/config/load.js';
import { obra, sandbox } from '../helpers/cli.js';
import { errorOf } from '../helpers/user-error.js';

/** Every key that is a length of time; a bare number is seconds for each of them. */
const DURATION_KEYS = [
  'agent.local.retry_initial_delay',
  'agent.local.retry_max_delay',
  'agent.local.rate_limit_initial_delay',
  'agent.local.rate_limit_max_delay',
  'agent.local.timeout',
  'agent.local.idle_timeout',
  'agent.local.api_timeout',
  'agent.local.usage_limit_margin',
  'agent.local.max_limit_wait',
  ...['codex', 'gemini', 'qwen', 'opencode'].flatMap((kind) => [`agent.${kind}.timeout`, `agent.${kind}.idle_timeout`]),
  'task.check_timeout',
  'budget.max_wall_seconds',
  'quality.judge.timeout',
  'restate.lease_seconds',
  'notify.webhook_timeout',
  'notify.webhook_retry_delay',
];

const valueOf = (key: string, raw: string): unknown => {
  const cwd = mkdtempSync(join(tmpdir(), 'obra-duration-'));
  const { config } = loadConfig({ cwd, env: {}, flags: flagLayer({ set: [`${key}=${raw}`] }) });
  return getPath(config as unknown as Record<string, unknown>, key);
};

describe('every duration key takes 90 (seconds), 90s, 15m, 8h and 2d', () => {
  it('the list above is every key whose name says it is a length of time', () => {
    expect(schemaLeaves().filter((leaf) => /timeout|delay|wait|margin|seconds/.test(leaf)).sort()).toEqual([...DURATION_KEYS].sort());
  });

  it.each(DURATION_KEYS)('%s', (key) => {
    expect(valueOf(key, '90')).toBe(90);
    expect(valueOf(key, '90s')).toBe(90);
    expect(valueOf(key, '15m')).toBe(900);
    expect(valueOf(key, '0.5m')).toBe(30);
  });

  it('hours and days where the key allows that long', () => {
    expect(valueOf('agent.local.timeout', '8h')).toBe(8 * 3600);
    expect(valueOf('agent.local.timeout', '2d')).toBe(2 * 86_400);
    expect(valueOf('agent.local.max_limit_wait', '8d')).toBe(8 * 86_400);
    expect(valueOf('restate.lease_seconds', '1h')).toBe(3600);
  });

  it('each key keeps its own bounds, with the value as written', () => {
    expect(errorOf(() => valueOf('restate.lease_seconds', '2h'))).toBe('config key "restate.lease_seconds" (from flag --set restate.lease_seconds): must be at most 3600 seconds (1h) — got "2h"');
    expect(errorOf(() => valueOf('agent.local.max_limit_wait', '25d'))).toBe('config key "agent.local.max_limit_wait" (from flag --set agent.local.max_limit_wait): must be at most 24 days (24d) — got "25d"');
    expect(errorOf(() => valueOf('agent.local.timeout', '0s'))).toBe('config key "agent.local.timeout" (from flag --set agent.local.timeout): must be more than 0 seconds — got "0s"');
  });

  it('a value that is no duration is one line naming the key, the value and the forms', () => {
    expect(errorOf(() => valueOf('agent.local.idle_timeout', '5 minutes'))).toBe(
      'config key "agent.local.idle_timeout" (from flag --set agent.local.idle_timeout): "5 minutes" is not a duration — use 90, 90s, 15m, 8h or 2d',
    );
    expect(errorOf(() => valueOf('task.check_timeout', 'true'))).toBe('config key "task.check_timeout" (from flag --set task.check_timeout): expected a duration: 90, 90s, 15m, 8h or 2d — got true');
  });

  it('through the CLI: OBRA_AGENT__LOCAL__TIMEOUT=15x', async () => {
    const box = sandbox();
    const result = await obra(['config'], { cwd: box.dir, env: { ...box.env, OBRA_AGENT__LOCAL__TIMEOUT: '15x' } });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toBe('obra: config key "agent.local.timeout" (from env OBRA_AGENT__LOCAL__TIMEOUT): "15x" is not a duration — use 90, 90s, 15m, 8h or 2d');
  });

  it('through the CLI: a file with 15m and 2d', async () => {
    const box = sandbox();
    writeFileSync(join(box.dir, 'obra.yaml'), 'agent:\n  local:\n    timeout: 15m\n    max_limit_wait: 2d\n');
    const result = await obra(['config', '--json'], { cwd: box.dir, env: box.env });
    expect(result.exitCode, result.stderr).toBe(0);
    const { config } = JSON.parse(result.stdout);
    expect([config.agent.local.timeout, config.agent.local.max_limit_wait]).toEqual([900, 2 * 86_400]);
  });
});

describe('duration flags take the same forms', () => {
  it('--park-after: a bare number is seconds, as before', () => {
    const parkAfter = durationOption('--park-after');
    expect([parkAfter('60'), parkAfter('90s'), parkAfter('15m'), parkAfter('8h'), parkAfter('2d')]).toEqual([60, 90, 900, 8 * 3600, 2 * 86_400]);
    expect(errorOf(() => parkAfter('0'))).toBe('--park-after: "0" is not a duration above 0');
  });

  it('--latency: a bare number is milliseconds, as before', () => {
    const latency = durationOption('--latency', 'ms');
    expect([latency('300'), latency('2s'), latency('1m')]).toEqual([300, 2000, 60_000]);
  });
});
