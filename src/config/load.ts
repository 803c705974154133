import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYamlValue } from 'yaml';
import { z } from 'zod';
import { UserError } from '../core/errors.js';
import { parseYamlDocument } from '../core/yaml-document.js';
import { configSchema, type ObraConfig } from './schema.js';

/** Where an effective value came from, for `obra config`. */
export type ConfigSource = 'default' | 'code' | `file ${string}` | `env ${string}` | `flag ${string}`;

export interface LoadedConfig {
  config: ObraConfig;
  /** Leaf key path (`agent.local.max_retries`) → where its value came from. */
  sources: Record<string, ConfigSource>;
  file: string | null;
}

type Tree = Record<string, unknown>;

export interface ConfigLayers {
  /** An explicit --config path (must exist), or null to look for `obra.yaml` in `cwd`. */
  file?: string | null;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Overrides from CLI flags, as a partial tree, with the flag that set each leaf. */
  flags?: { values: Tree; names: Record<string, string> };
}

/**
 * Every key's env var: `OBRA_` + its path in capitals, `__` between the parts (`engine` → OBRA_ENGINE,
 * `agent.local.timeout` → OBRA_AGENT__LOCAL__TIMEOUT).
 */
export const envNameOf = (path: string): string => `OBRA_${path.split('.').join('__').toUpperCase()}`;

/** Short names some keys also have; the key's own env var wins when both are set. */
export const ENV_ALIASES: Readonly<Record<string, string>> = {
  OBRA_CLAUDE_BIN: 'agent.local.command',
  OBRA_CODEX_BIN: 'agent.codex.command',
  OBRA_GEMINI_BIN: 'agent.gemini.command',
  OBRA_QWEN_BIN: 'agent.qwen.command',
  OBRA_OPENCODE_BIN: 'agent.opencode.command',
  OBRA_DB: 'store.dir',
  OBRA_MAX_ITERATIONS: 'task.max_iterations',
};

let keyByEnvName: Map<string, string> | undefined;

/**
 * The key an `OBRA_*` variable sets, or null for one that is no key (OBRA_DEBUG). A name with `__` that names
 * no key is still read, so that a typo is reported with the nearest key instead of being ignored.
 */
function envKeyOf(name: string): string | null {
  keyByEnvName ??= new Map(schemaLeaves().map((leaf) => [envNameOf(leaf), leaf]));
  const key = keyByEnvName.get(name) ?? (Object.hasOwn(ENV_ALIASES, name) ? ENV_ALIASES[name] : undefined);
  if (key) return key;
  return name.includes('__') ? name.slice('OBRA_'.length).toLowerCase().split('__').join('.') : null;
}

export function loadConfig(layers: ConfigLayers = {}): LoadedConfig {
  const cwd = layers.cwd ?? process.cwd();
  const env = layers.env ?? process.env;
  const sources: Record<string, ConfigSource> = {};
  let merged: Tree = {};

  const { tree: fileTree, path: filePath } = readConfigFile(layers.file ?? null, cwd);
  if (fileTree) {
    merged = deepMerge(merged, fileTree);
    for (const leaf of leaves(fileTree)) sources[leaf] = `file ${filePath}`;
  }

  const envTree: Tree = {};
  // Aliases first, so that a key's own variable overrides its short name whatever the environment's order.
  const names = Object.keys(env).filter((name) => name.startsWith('OBRA_') && env[name] !== undefined);
  const isAlias = (name: string) => Object.hasOwn(ENV_ALIASES, name);
  for (const name of [...names.filter(isAlias), ...names.filter((name) => !isAlias(name))]) {
    const raw = env[name]!;
    const path = envKeyOf(name);
    if (!path) continue;
    setPath(envTree, path, parseScalar(raw));
    sources[path] = `env ${name}`;
  }
  merged = deepMerge(merged, envTree);

  if (layers.flags) {
    merged = deepMerge(merged, layers.flags.values);
    for (const leaf of leaves(layers.flags.values)) sources[leaf] = `flag ${layers.flags.names[leaf] ?? leaf}`;
  }

  const parsed = configSchema.safeParse(merged);
  if (!parsed.success) throw new UserError(describeConfigError(parsed.error, merged, sources));
  // Every option, set or not, so `obra config` lists the optional ones too (as unset).
  for (const leaf of schemaLeaves()) sources[leaf] ??= 'default';
  return { config: parsed.data, sources, file: filePath };
}

/** The key path of every option the schema knows (`agent.local.max_retries`, ...), in schema order. */
export function schemaLeaves(schema: z.ZodType = configSchema, prefix = ''): string[] {
  const shape = objectShape(schema);
  if (!shape) return [prefix.slice(0, -1)];
  return Object.entries(shape).flatMap(([key, child]) => schemaLeaves(child, `${prefix}${key}.`));
}

/**
 * Checks a config built in code (the library's `config` option): the same rules and messages as a file, so a
 * threshold outside [0, 1] is a clear UserError before anything runs, not a surprise in the middle of a run.
 */
export function validateConfig(config: unknown): ObraConfig {
  const tree = (config ?? {}) as Tree;
  const parsed = configSchema.safeParse(tree);
  if (!parsed.success) {
    const sources: Record<string, ConfigSource> = {};
    for (const leaf of leaves(isTree(tree) ? tree : {})) sources[leaf] = 'code';
    throw new UserError(describeConfigError(parsed.error, isTree(tree) ? tree : {}, sources));
  }
  return parsed.data;
}

function readConfigFile(explicit: string | null, cwd: string): { tree: Tree | null; path: string | null } {
  const path = explicit ? resolve(cwd, explicit) : resolve(cwd, 'obra.yaml');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if (!explicit && (error as NodeJS.ErrnoException).code === 'ENOENT') return { tree: null, path: null };
    throw new UserError(`cannot read config file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)} — check the --config path`);
  }
  const { doc } = parseYamlDocument(path, text);
  let tree: unknown;
  try {
    // The yaml library refuses documents whose aliases would expand without bound (a "billion laughs" file).
    tree = doc.toJS() ?? {};
  } catch (error) {
    throw new UserError(`${path}: cannot read the config: ${(error as Error).message} (a YAML file whose aliases expand too far) — write the values out instead of nesting aliases`);
  }
  if (typeof tree !== 'object' || Array.isArray(tree)) throw new UserError(`${path}: the config must be a YAML mapping (key: value), not ${Array.isArray(tree) ? 'a list' : typeof tree}`);
  return { tree: dropEmptySections(tree as Tree), path };
}

/** One line per problem: the key path, the bad value, what is allowed, and where the value came from. */
export function describeConfigError(error: z.ZodError, input: Tree, sources: Record<string, ConfigSource>): string {
  return error.issues
    .map((issue) => {
      if (issue.code === 'unrecognized_keys') {
        const parent = issue.path.join('.');
        return issue.keys
          .map((key) => {
            const full = parent ? `${parent}.${key}` : key;
            const sibling = nearest(key, knownKeys(issue.path));
            // No sibling of that name: the same key one section further down (agent.command → agent.local.command).
            const suggestion = sibling !== null ? (parent ? `${parent}.${sibling}` : sibling) : keyBelow(issue.path, key);
            const source = sources[full] ?? Object.entries(sources).find(([leaf]) => leaf.startsWith(`${full}.`))?.[1];
            const where = source ? ` (from ${source})` : '';
            return `unknown config key "${full}"${where}${suggestion ? ` — did you mean "${suggestion}"?` : ''}`;
          })
          .join('; ');
      }
      const path = issue.path.join('.');
      const value = getPath(input, path);
      const source = sources[path] ?? Object.entries(sources).find(([leaf]) => leaf.startsWith(`${path}.`))?.[1];
      const where = source ? ` (from ${source})` : '';
      // A message that already quotes the value (a duration's) does not repeat it.
      const quotesValue = issue.code === 'custom' && (issue.params as { quotesValue?: boolean } | undefined)?.quotesValue;
      const shown = value === undefined || quotesValue ? '' : ` got ${JSON.stringify(value)}`;
      return `config key "${path}"${where}: ${issue.message}${shown ? ` —${shown}` : ''}`;
    })
    .join('; ');
}

function knownKeys(path: PropertyKey[]): string[] {
  let schema: z.ZodType = configSchema;
  for (const part of path) {
    const shape = objectShape(schema);
    if (!shape || typeof part !== 'string' || !(part in shape)) return [];
    schema = shape[part]!;
  }
  return Object.keys(objectShape(schema) ?? {});
}

/** The key named `key` in a section right under `path` (its full path; the first of several), or null when none is. */
function keyBelow(path: PropertyKey[], key: string): string | null {
  const found = knownKeys(path).filter((section) => knownKeys([...path, section]).includes(key));
  // Several (every agent section has a `command`): the first in the schema's order, Claude Code's agent.local.
  return found.length ? [...path, found[0], key].join('.') : null;
}

function objectShape(schema: z.ZodType): Record<string, z.ZodType> | null {
  let current: z.ZodType = schema;
  // Unwrap defaults, prefaults, optionals and refinements down to the object.
  for (let i = 0; i < 10; i++) {
    if (current instanceof z.ZodObject) return current.shape as Record<string, z.ZodType>;
    const inner = (current as unknown as { def?: { innerType?: z.ZodType; in?: z.ZodType; schema?: z.ZodType } }).def;
    const next = inner?.innerType ?? inner?.in ?? inner?.schema;
    if (!next) return null;
    current = next;
  }
  return null;
}

export function nearest(word: string, candidates: string[]): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = levenshtein(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best !== null && bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : null;
}

function levenshtein(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

/** Env values are YAML scalars: `3` is a number, `[a, b]` a list, `null` null. */
export function parseScalar(raw: string): unknown {
  try {
    return parseYamlValue(raw);
  } catch {
    return raw;
  }
}

/** `task:` with nothing under it (YAML null) means "no settings here", not "task is null". */
function dropEmptySections(tree: Tree, path: PropertyKey[] = []): Tree {
  const out: Tree = {};
  for (const [key, value] of Object.entries(tree)) {
    const isSection = knownKeys(path).includes(key) && objectShapeAt([...path, key]) !== null;
    if (value === null && isSection) continue;
    out[key] = isTree(value) ? dropEmptySections(value, [...path, key]) : value;
  }
  return out;
}

function objectShapeAt(path: PropertyKey[]): Record<string, z.ZodType> | null {
  let schema: z.ZodType = configSchema;
  for (const part of path) {
    const shape = objectShape(schema);
    if (!shape || typeof part !== 'string' || !(part in shape)) return null;
    schema = shape[part]!;
  }
  return objectShape(schema);
}

function isTree(value: unknown): value is Tree {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function deepMerge(base: Tree, over: Tree): Tree {
  const out: Tree = { ...base };
  for (const [key, value] of Object.entries(over)) {
    out[key] = isTree(value) && isTree(out[key]) ? deepMerge(out[key] as Tree, value) : value;
  }
  return out;
}

export function leaves(tree: Tree, prefix = ''): string[] {
  return Object.entries(tree).flatMap(([key, value]) =>
    isTree(value) ? leaves(value, `${prefix}${key}.`) : [`${prefix}${key}`],
  );
}

export function setPath(tree: Tree, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = tree;
  for (const part of parts.slice(0, -1)) {
    if (!isTree(node[part])) node[part] = {};
    node = node[part] as Tree;
  }
  node[parts.at(-1)!] = value;
}

export function getPath(tree: Tree, path: string): unknown {
  return path.split('.').reduce<unknown>((node, part) => (isTree(node) ? node[part] : undefined), tree);
}
