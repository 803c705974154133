import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { formatEffectiveConfig } from '../../src/config/describe.js';
import { flagLayer } from '../../src/config/flags.js';
import { getPath, leaves, loadConfig, schemaLeaves, validateConfig } from '../../src/config/load.js';
import { defaultConfig } from '../../src/config/schema.js';
import { errorOf } from '../helpers/user-error.js';

const ROOT = resolve(import.meta.dirname, '../..');
const dirWith = (yaml?: string) => {
  const dir = mkdtempSync(join(tmpdir(), 'obra-config-'));
  if (yaml !== undefined) writeFileSync(join(dir, 'obra.yaml'), yaml);
  return dir;
};
const load = (yaml: string | undefined, env: Record<string, string> = {}, flags?: Parameters<typeof flagLayer>[0]) => {
  const cwd = dirWith(yaml);
  return { cwd, ...loadConfig({ cwd, env, flags: flags ? flagLayer(flags) : undefined }) };
};

describe('obra.yaml, OBRA_* env and flags, in that order', () => {
  it('without a file: every option has its default and says so', () => {
    const { config, sources, file } = load(undefined);
    expect(file).toBeNull();
    expect(config).toEqual(defaultConfig());
    expect(new Set(Object.values(sources))).toEqual(new Set(['default']));
    expect(Object.keys(sources).sort()).toEqual(schemaLeaves().sort());
  });

  it('file < env < flag, each remembered as the source of its value', () => {
    const yaml = 'agent:\n  local:\n    max_retries: 7\n    retry_initial_delay: 1.5\ntask:\n  max_iterations: 4\n';
    const { cwd, config, sources } = load(yaml, { OBRA_AGENT__LOCAL__MAX_RETRIES: '3', OBRA_MAX_ITERATIONS: '6' }, { set: ['task.max_iterations=9'], db: 'runs-here' });
    expect(config.agent.local.retry_initial_delay).toBe(1.5);
    expect(sources['agent.local.retry_initial_delay']).toBe(`file ${join(cwd, 'obra.yaml')}`);
    expect(config.agent.local.max_retries).toBe(3);
    expect(sources['agent.local.max_retries']).toBe('env OBRA_AGENT__LOCAL__MAX_RETRIES');
    expect(config.task.max_iterations).toBe(9);
    expect(sources['task.max_iterations']).toBe('flag --set task.max_iterations');
    expect(config.store.dir).toBe('runs-here');
    expect(sources['store.dir']).toBe('flag --db');
    expect(sources['decision.proceed_threshold']).toBe('default');
  });

  it('env values are YAML scalars: numbers, lists, booleans, null; short aliases exist', () => {
    const { config, sources } = load(undefined, {
      OBRA_TASK__CHECKS: '[npm test, npx tsc --noEmit]',
      OBRA_QUALITY__JUDGE__ENABLED: 'true',
      OBRA_BUDGET__MAX_COST_USD: '2.5',
      OBRA_DB: '/var/obra',
      OBRA_CLAUDE_BIN: '/opt/claude',
      OBRA_DEBUG: '1',
    });
    expect(config.task.checks).toEqual(['npm test', 'npx tsc --noEmit']);
    expect(config.quality.judge.enabled).toBe(true);
    expect(config.budget.max_cost_usd).toBe(2.5);
    expect(config.store.dir).toBe('/var/obra');
    expect(config.agent.local.command).toBe('/opt/claude');
    expect(sources['agent.local.command']).toBe('env OBRA_CLAUDE_BIN');
  });

  it('an empty section (`task:` with nothing under it) is no settings, not an error', () => {
    expect(load('task:\ndecision:\n  stuck_after: 4\n').config.task).toEqual(defaultConfig().task);
  });

  it('`--set` parses its value like env and refuses a pair without "="', () => {
    expect(load(undefined, {}, { set: ['budget.max_turns=40', 'task.checks=[make test]'] }).config).toMatchObject({ budget: { max_turns: 40 }, task: { checks: ['make test'] } });
    expect(errorOf(() => load(undefined, {}, { set: ['budget.max_turns'] }))).toBe('--set expects key=value (like --set decision.stuck_after=4), got "budget.max_turns"');
  });
});

describe('errors name the key path, the bad value, what is allowed, and where it came from', () => {
  const cases: [string, string, RegExp][] = [
    ['a string for a number', 'agent:\n  local:\n    max_retries: five\n', /^config key "agent\.local\.max_retries" \(from file .*obra\.yaml\): Invalid input: expected number, received string — got "five"$/],
    ['a value outside an enum', 'agent:\n  local:\n    retry_jitter: some\n', /"agent\.local\.retry_jitter" .*expected one of "none"\|"full"\|"equal" — got "some"/],
    ['a threshold above 1', 'decision:\n  proceed_threshold: 1.5\n', /"decision\.proceed_threshold" .*must be between 0 and 1 \(it is above 1\) — got 1\.5/],
    ['a threshold below 0', 'decision:\n  min_confidence: -0.2\n', /"decision\.min_confidence" .*must be between 0 and 1 \(it is below 0\) — got -0\.2/],
    ['thresholds in the wrong order', 'decision:\n  escalate_threshold: 0.8\n', /"decision\.escalate_threshold" .*escalate_threshold \(0\.8\) must not be above proceed_threshold \(0\.7\) — got 0\.8/],
    ['a fractional count', 'decision:\n  stuck_after: 2.5\n', /"decision\.stuck_after" .*must be a whole number — got 2\.5/],
    ['a judge host that is not a URL', 'quality:\n  judge:\n    host: localhost:11434\n', /"quality\.judge\.host" .*must be an http\(s\) URL like http:\/\/127\.0\.0\.1:11434 — got "localhost:11434"/],
    ['a judge weight above 1', 'quality:\n  judge:\n    weight: 2\n', /"quality\.judge\.weight" .*between 0 and 1 .* — got 2/],
    ['all quality weights 0', 'quality:\n  weights: { syntax: 0, requirements: 0, code_quality: 0, testing: 0 }\n', /"quality\.weights" .*at least one weight must be above 0/],
    ['a negative budget', 'budget:\n  max_cost_usd: -1\n', /"budget\.max_cost_usd" .*must be more than 0 — got -1/],
    ['an unknown key', 'task:\n  max_iteration: 3\n', /^unknown config key "task\.max_iteration" \(from file .*\) — did you mean "task\.max_iterations"\?$/],
    ['an unknown section', 'decison:\n  stuck_after: 3\n', /^unknown config key "decison" \(from file .*\) — did you mean "decision"\?$/],
    ['an unknown nested key', 'quality:\n  judge:\n    modle: llama3\n', /unknown config key "quality\.judge\.modle" .* did you mean "quality\.judge\.model"\?/],
    ['an unknown key far from any', 'task:\n  frobnicate: 1\n', /^unknown config key "task\.frobnicate" \(from file [^)]*\)$/],
    ['a key one section too high', 'agent:\n  command: ./claude\n', /^unknown config key "agent\.command" \(from file [^)]*\) — did you mean "agent\.local\.command"\?$/],
  ];

  it.each(cases)('%s', (_label, yaml, message) => {
    expect(errorOf(() => load(yaml))).toMatch(message);
  });

  it('a YAML syntax error gives the file, line and column', () => {
    const cwd = dirWith('agent:\n  local:\n    max_retries: 3\n  bad: [1, 2\n');
    expect(errorOf(() => loadConfig({ cwd, env: {} }))).toBe(`${join(cwd, 'obra.yaml')}:5:1: Flow sequence in block collection must be sufficiently indented and end with a ]`);
    const tab = dirWith('task:\n\tmax_iterations: 3\n');
    expect(errorOf(() => loadConfig({ cwd: tab, env: {} }))).toBe(`${join(tab, 'obra.yaml')}:2:1: Tabs are not allowed as indentation`);
  });

  it('a file that is not a mapping, and a --config path that does not exist', () => {
    expect(errorOf(() => load('- a\n- b\n'))).toMatch(/the config must be a YAML mapping \(key: value\), not a list/);
    expect(errorOf(() => loadConfig({ file: '/nonexistent/obra.yaml', env: {} }))).toBe('cannot read config file /nonexistent/obra.yaml: ENOENT — check the --config path');
  });

  it('an env var or a flag is named as the source of a bad value', () => {
    expect(errorOf(() => load(undefined, { OBRA_DECISION__MIN_CONFIDENCE: '3' }))).toMatch(/"decision\.min_confidence" \(from env OBRA_DECISION__MIN_CONFIDENCE\): .* got 3/);
    expect(errorOf(() => load(undefined, { OBRA_DECISON__STUCK_AFTER: '3' }))).toBe('unknown config key "decison" (from env OBRA_DECISON__STUCK_AFTER) — did you mean "decision"?');
    expect(errorOf(() => load(undefined, {}, { set: ['task.max_iterations=0'] }))).toMatch(/"task\.max_iterations" \(from flag --set task\.max_iterations\): must be at least 1 — got 0/);
  });

  it('a config built in code (the library) is checked the same way before anything runs', () => {
    expect(errorOf(() => validateConfig({ decision: { proceed_threshold: 1.2 } }))).toBe('config key "decision.proceed_threshold" (from code): must be between 0 and 1 (it is above 1) — got 1.2');
    expect(validateConfig(defaultConfig())).toEqual(defaultConfig());
  });
});

describe('obra config output', () => {
  it('prints every key with its value, marking where non-defaults came from', () => {
    const loaded = load('decision:\n  stuck_after: 4\n', { OBRA_DB: '/x' });
    const text = formatEffectiveConfig(loaded);
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toBe(`# config file: ${join(loaded.cwd, 'obra.yaml')}`);
    expect(lines.slice(1)).toHaveLength(schemaLeaves().length);
    expect(lines).toContainEqual(expect.stringMatching(/^decision\.stuck_after +4 +# file .*obra\.yaml$/));
    expect(lines).toContainEqual(expect.stringMatching(/^store\.dir +"\/x" +# env OBRA_DB$/));
    expect(lines).toContainEqual(expect.stringMatching(/^decision\.proceed_threshold +0\.7$/));
    expect(lines).toContainEqual(expect.stringMatching(/^agent\.local\.model +\(unset\)$/));
  });
});

describe('docs/configuration.md documents every option with its default', () => {
  const guide = readFileSync(join(ROOT, 'docs/configuration.md'), 'utf8');
  const section = guide.slice(guide.indexOf('## Every option, with its default'));
  const block = section.slice(section.indexOf('```yaml') + 7, section.indexOf('```', section.indexOf('```yaml') + 7));
  const documented = parseYaml(block) as Record<string, unknown>;

  it('the YAML block under "## Every option, with its default" holds every option that has a default, with that default', () => {
    const defaults = defaultConfig() as unknown as Record<string, unknown>;
    const withDefaults = leaves(defaults).filter((leaf) => getPath(defaults, leaf) !== undefined);
    const missing = withDefaults.filter((leaf) => getPath(documented, leaf) === undefined && !block.includes(`${leaf.split('.').at(-1)}:`));
    expect(missing, 'options missing from docs/configuration.md').toEqual([]);
    for (const leaf of withDefaults) {
      const shown = getPath(documented, leaf);
      expect(shown, `docs/configuration.md default of ${leaf}`).toEqual(getPath(defaults, leaf));
    }
    expect(leaves(documented).filter((leaf) => !schemaLeaves().includes(leaf)), 'docs/configuration.md options the schema does not know').toEqual([]);
  });

  it('optional options without a default are named in the block too', () => {
    const defaults = defaultConfig() as unknown as Record<string, unknown>;
    for (const leaf of schemaLeaves().filter((l) => getPath(defaults, l) === undefined)) {
      expect(block, `docs/configuration.md mentions ${leaf}`).toContain(leaf.split('.').at(-1)!);
    }
  });
});
