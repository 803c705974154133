import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { envNameOf, loadConfig, schemaLeaves } from '../../src/config/load.js';
import { defaultConfig } from '../../src/config/schema.js';
import { obra, sandbox } from '../helpers/cli.js';

const empty = () => mkdtempSync(join(tmpdir(), 'obra-config-env-'));

/** A valid value for every key, as an env var would hold it (YAML): the default, or one for the optional keys. */
const OPTIONAL_VALUES: Record<string, string> = {
  'agent.local.session_id': '123e4567-e89b-12d3-a456-426614174000',
  'agent.local.api_timeout': '2m',
  'agent.local.model': 'opus',
  'agent.local.max_turns': '3',
  'agent.local.append_system_prompt': 'Be brief.',
  'agent.codex.home': '/home/me/.codex',
  ...Object.fromEntries(['codex', 'gemini', 'qwen', 'opencode'].flatMap((kind) => [[`agent.${kind}.model`, 'some-model'], [`agent.${kind}.timeout`, '10m'], [`agent.${kind}.idle_timeout`, '90']])),
};
const envValueOf = (leaf: string): string => {
  const value = leaf.split('.').reduce<unknown>((node, part) => (node as Record<string, unknown>)[part], defaultConfig());
  return value === undefined ? OPTIONAL_VALUES[leaf]! : JSON.stringify(value);
};

describe('every config key has one env var: OBRA_ + its path in capitals, __ between the parts', () => {
  it('names top-level and nested keys alike', () => {
    expect(envNameOf('engine')).toBe('OBRA_ENGINE');
    expect(envNameOf('agent.local.timeout')).toBe('OBRA_AGENT__LOCAL__TIMEOUT');
    expect(envNameOf('quality.weights.code_quality')).toBe('OBRA_QUALITY__WEIGHTS__CODE_QUALITY');
  });

  it.each(schemaLeaves())('%s is set by its env var, and says so', (leaf) => {
    const name = envNameOf(leaf);
    const { sources } = loadConfig({ cwd: empty(), env: { [name]: envValueOf(leaf) } });
    expect(sources[leaf]).toBe(`env ${name}`);
  });

  it('OBRA_ENGINE=restate selects the Restate engine (it was silently ignored)', () => {
    const { config, sources } = loadConfig({ cwd: empty(), env: { OBRA_ENGINE: 'restate' } });
    expect(config.engine).toBe('restate');
    expect(sources.engine).toBe('env OBRA_ENGINE');
  });

  it("a key's own variable wins over its short alias, whatever the environment's order", () => {
    for (const env of [{ OBRA_DB: '/short', OBRA_STORE__DIR: '/own' }, { OBRA_STORE__DIR: '/own', OBRA_DB: '/short' }]) {
      const { config, sources } = loadConfig({ cwd: empty(), env });
      expect(config.store.dir).toBe('/own');
      expect(sources['store.dir']).toBe('env OBRA_STORE__DIR');
    }
  });

  it('OBRA_ variables that name no key (OBRA_DEBUG, OBRA_RESTATE_SERVER) are not config', () => {
    const { config } = loadConfig({ cwd: empty(), env: { OBRA_DEBUG: '1', OBRA_RESTATE_SERVER: '/opt/restate-server', OBRA_SESSION_LOCK_DIR: '/tmp/x' } });
    expect(config).toEqual(defaultConfig());
  });
});

describe('obra config shows env values and where they came from', () => {
  it('a top-level key (OBRA_ENGINE) and a nested one (OBRA_AGENT__LOCAL__TIMEOUT, with a unit)', async () => {
    const box = sandbox();
    const env = { ...box.env, OBRA_ENGINE: 'restate', OBRA_AGENT__LOCAL__TIMEOUT: '15m' };
    const text = await obra(['config'], { cwd: box.dir, env });
    expect(text.exitCode, text.stderr).toBe(0);
    const lines = text.stdout.split('\n');
    expect(lines).toContainEqual(expect.stringMatching(/^engine +"restate" +# env OBRA_ENGINE$/));
    expect(lines).toContainEqual(expect.stringMatching(/^agent\.local\.timeout +900 +# env OBRA_AGENT__LOCAL__TIMEOUT$/));

    const json = await obra(['config', '--json'], { cwd: box.dir, env });
    const { config, sources } = JSON.parse(json.stdout);
    expect([config.engine, sources.engine]).toEqual(['restate', 'env OBRA_ENGINE']);
    expect([config.agent.local.timeout, sources['agent.local.timeout']]).toEqual([900, 'env OBRA_AGENT__LOCAL__TIMEOUT']);
  });

  it('--set sets a top-level key too, over its env var', async () => {
    const box = sandbox();
    const result = await obra(['config', '--set', 'engine=local'], { cwd: box.dir, env: { ...box.env, OBRA_ENGINE: 'restate' } });
    expect(result.stdout.split('\n')).toContainEqual(expect.stringMatching(/^engine +"local" +# flag --set engine$/));
  });
});
