/**
 * docs/config-reference.md, made from the zod schema (src/config/schema.ts): every key with its type, default,
 * allowed values, environment variable and description. `npm run docs:config` writes it
 * (docs/update-config-reference.ts); test/docs/config-reference.test.ts fails when the committed file is stale.
 */
import { z } from 'zod';
import { ENV_ALIASES, envNameOf, getPath } from '../src/config/load.js';
import { configSchema } from '../src/config/schema.js';

type JsonSchema = {
  type?: string | string[];
  description?: string;
  enum?: unknown[];
  anyOf?: JsonSchema[];
  items?: JsonSchema;
  properties?: Record<string, JsonSchema>;
  additionalProperties?: JsonSchema | boolean;
  required?: string[];
  format?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  minLength?: number;
  minItems?: number;
};

interface Key {
  path: string;
  /** The schema as the user writes the value (a duration is a number or a string)... */
  input: JsonSchema;
  /** ...and as Obra reads it (a duration in seconds, with its bounds). */
  output: JsonSchema;
}

interface Section {
  path: string;
  description: string | undefined;
  keys: Key[];
}

const NO_LIMIT = Number.MAX_SAFE_INTEGER;

export function configReference(schema: z.ZodType = configSchema): string {
  const input = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  const output = z.toJSONSchema(schema, { io: 'output', unrepresentable: 'any' }) as JsonSchema;
  const defaults = schema.parse({}) as Record<string, unknown>;
  const sections = sectionsOf(input, output, '');
  const undescribed = sections.flatMap((section) => section.keys).filter((key) => !key.input.description);
  if (undescribed.length) {
    throw new Error(`config key${undescribed.length > 1 ? 's' : ''} ${undescribed.map((key) => key.path).join(', ')} ha${undescribed.length > 1 ? 've' : 's'} no description — add .describe('…') to it in src/config/schema.ts`);
  }
  const aliases = new Map<string, string[]>();
  for (const [name, path] of Object.entries(ENV_ALIASES)) aliases.set(path, [...(aliases.get(path) ?? []), name]);

  const out = [
    '# Configuration reference',
    '',
    '<!-- Generated from src/config/schema.ts by `npm run docs:config`: edit the schema, not this file. -->',
    '',
    'Every key Obra reads, in `obra.yaml`, as an environment variable, or with `--set <key>=<value>`. How the',
    'layers combine, how durations are written and what errors look like: [Configuration](configuration.md).',
    'A duration is a number of seconds or a number with a unit (`90`, `90s`, `15m`, `8h`, `2d`); its default is',
    'shown in seconds. Environment values are read as YAML scalars (`3`, `true`, `[npm test]`, `null`).',
    '',
  ];
  for (const section of sections) {
    out.push(`## ${section.path ? `\`${section.path}\`` : 'Top level'}`, '');
    if (section.description) out.push(prose(section.description), '');
    out.push('| key | type | default | allowed | environment | description |', '| --- | --- | --- | --- | --- | --- |');
    for (const key of section.keys) {
      const env = [envNameOf(key.path), ...(aliases.get(key.path) ?? [])].map(code).join(', ');
      const cells = [code(key.path), typeOf(key), defaultOf(getPath(defaults, key.path), isDuration(key)), allowedOf(key), env, prose(key.input.description!)];
      out.push(`| ${cells.map(cell).join(' | ')} |`);
    }
    out.push('');
  }
  return out.join('\n');
}

/** One section per object of the schema that holds keys, in the schema's order (its direct keys first). */
function sectionsOf(input: JsonSchema, output: JsonSchema, path: string): Section[] {
  const keys: Key[] = [];
  const below: Section[] = [];
  for (const [name, child] of Object.entries(input.properties ?? {})) {
    const childPath = path ? `${path}.${name}` : name;
    const childOutput = output.properties?.[name] ?? child;
    if (child.properties) below.push(...sectionsOf(child, childOutput, childPath));
    else keys.push({ path: childPath, input: child, output: childOutput });
  }
  return keys.length ? [{ path, description: path ? input.description : undefined, keys }, ...below] : below;
}

const isDuration = (key: Key): boolean => Array.isArray(key.input.type) && key.input.type.includes('number') && key.input.type.includes('string');

function typeOf(key: Key): string {
  if (isDuration(key)) return (key.input.type as string[]).includes('null') ? 'duration or null' : 'duration';
  return typeOfSchema(key.output);
}

function typeOfSchema(schema: JsonSchema): string {
  if (schema.anyOf) return schema.anyOf.map(typeOfSchema).join(' or ');
  if (schema.enum) return 'choice';
  if (schema.format === 'uri') return 'URL';
  if (schema.format === 'uuid') return 'UUID';
  switch (schema.type) {
    case 'integer':
      return 'whole number';
    case 'array':
      return `list of ${schema.items ? plural(typeOfSchema(schema.items)) : 'values'}`;
    case 'object':
      return typeof schema.additionalProperties === 'object' ? `map of name → ${shapeOf(schema.additionalProperties)}` : 'object';
    case 'null':
      return 'null';
    default:
      return String(schema.type ?? 'any');
  }
}

const plural = (type: string): string => (type === 'whole number' ? 'whole numbers' : type.endsWith('s') ? type : `${type}s`);

function shapeOf(schema: JsonSchema): string {
  const fields = Object.keys(schema.properties ?? {}).map((name) => (schema.required?.includes(name) ? name : `${name}?`));
  return `{ ${fields.join(', ')} }`;
}

function defaultOf(value: unknown, duration: boolean): string {
  if (value === undefined) return 'unset';
  return `${code(JSON.stringify(value))}${duration && typeof value === 'number' ? ' s' : ''}`;
}

function allowedOf(key: Key): string {
  const unit = isDuration(key) ? ' s' : '';
  const schema = key.output.anyOf?.find((option) => option.type !== 'null') ?? key.output;
  const rules: string[] = [];
  if (schema.enum) rules.push(schema.enum.map((value) => code(String(value))).join(', '));
  if (schema.exclusiveMinimum !== undefined) rules.push(`> ${schema.exclusiveMinimum}${unit}`);
  if (schema.minimum !== undefined && schema.maximum !== undefined && schema.maximum < NO_LIMIT) rules.push(`${schema.minimum}–${schema.maximum}${unit}`);
  else if (schema.minimum !== undefined) rules.push(`≥ ${schema.minimum}${unit}`);
  else if (schema.maximum !== undefined && schema.maximum < NO_LIMIT) rules.push(`≤ ${schema.maximum}${unit}`);
  if (schema.minLength) rules.push('not empty');
  if (schema.pattern && schema.format === undefined) rules.push(`matches ${code(schema.pattern)}`);
  if (schema.minItems) rules.push(`at least ${schema.minItems}`);
  const items = schema.items;
  if (items?.minLength) rules.push('no empty item');
  if (items?.pattern && items.format === undefined) rules.push(`each matches ${code(items.pattern)}`);
  if (schema.format === 'uri' || items?.format === 'uri') rules.push('http(s)');
  return rules.join('; ') || '—';
}

const code = (text: string): string => (text.includes('`') ? `\`\` ${text} \`\`` : `\`${text}\``);
/** A description is plain text: `<runId>` must not read as an HTML tag. */
const prose = (text: string): string => text.replace(/</g, '&lt;');
const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
