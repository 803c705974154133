import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isMap, isSeq, type Node } from 'yaml';
import { z } from 'zod';
import { AGENT_KINDS } from '../core/agent-kinds.js';
import { UserError } from '../core/errors.js';
import { parseYamlDocument } from '../core/yaml-document.js';
import type { BatchTask } from './submit.js';

/**
 * `obra submit --file tasks.yaml`: a list of tasks, each with the fields of `obra submit`'s flags —
 *
 *   - task: Add input validation to src/api.ts
 *     checks: [npm test]
 *     repo: ../api            # relative to the file
 *     base: main
 *     priority: 2
 *     name: validation        # so that another task of the file can follow it
 *     agent: codex            # the agent CLI for this task (default: the config's agent.kind)
 *   - task: Fix the flaky test
 *     agents: [claude, codex] # a race: one attempt per agent, the evidence picks the winner (docs/race.md)
 *     attempts: 2             # attempts per agent (with no agents: of the task's agent)
 *   - task: Document the validation rules
 *     after: validation       # a name of this file, or a run id of the store
 *
 * Checked like the config (zod, one line per problem with the file's line number); nothing is queued when any
 * entry is bad.
 */

/** One task of the file (also what the HTTP API and `obra mcp` take, see src/workbench/actions.ts). */
export const taskEntrySchema = z.strictObject({
  task: z.string({ error: 'expected the task as text' }).min(1, 'the task must not be empty'),
  checks: z.array(z.string().min(1, 'a check must not be empty'), { error: 'expected a list of shell commands' }).optional(),
  repo: z.string().min(1).optional(),
  base: z.string().min(1).optional(),
  priority: z.number({ error: 'expected a whole number' }).int('must be a whole number').optional(),
  after: z.string().min(1).optional(),
  name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, ".", "_" and "-" only').optional(),
  run_id: z.string().regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, "-" and "_" only').optional(),
  agent: z.enum(AGENT_KINDS, { error: `expected one of ${AGENT_KINDS.join(', ')}` }).optional(),
  /** A race: one attempt per agent (see src/race/race-submit.ts). */
  agents: z.array(z.enum(AGENT_KINDS, { error: `expected one of ${AGENT_KINDS.join(', ')}` }), { error: 'expected a list of agent kinds, e.g. [claude, codex]' }).min(1, 'name at least one agent').optional(),
  /** A race: attempts per agent. */
  attempts: z.number({ error: 'expected a whole number' }).int('must be a whole number').min(1, 'must be at least 1').optional(),
});

export type TaskEntry = BatchTask;

export function readTasksFile(path: string): TaskEntry[] {
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new UserError(`cannot read the tasks file ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  const { doc, lines } = parseYamlDocument(file, text);
  if (!isSeq(doc.contents)) throw new UserError(`${file}: expected a list of tasks (each "- task: ..."), not ${doc.contents === null ? 'nothing' : 'a single value'}`);
  const lineOf = (node: Node | null | undefined) => (node?.range ? lines.linePos(node.range[0]).line : '?');
  let json: unknown[];
  try {
    json = doc.toJS() as unknown[];
  } catch (error) {
    throw new UserError(`${file}: cannot read the tasks: ${(error as Error).message}`);
  }

  const problems: string[] = [];
  const entries: z.infer<typeof taskEntrySchema>[] = [];
  doc.contents.items.forEach((item, i) => {
    const parsed = taskEntrySchema.safeParse(json[i]);
    if (parsed.success) {
      entries.push(parsed.data);
      return;
    }
    for (const issue of parsed.error.issues) {
      const key = issue.code === 'unrecognized_keys' ? issue.keys[0] : issue.path[0];
      const node = isMap(item) && key !== undefined ? (item.items.find((pair) => (pair.key as { value?: unknown } | null)?.value === key)?.key as Node | undefined) : (item as Node);
      const value = issue.path.length === 1 && json[i] && typeof json[i] === 'object' ? (json[i] as Record<string, unknown>)[String(issue.path[0])] : null;
      const what =
        issue.code === 'unrecognized_keys' ? `unknown field "${issue.keys.join('", "')}" (the fields are ${Object.keys(taskEntrySchema.shape).join(', ')})`
        : issue.code === 'invalid_type' && value === undefined ? `the field "${String(issue.path[0])}" is missing${issue.path[0] === 'task' ? ' — say what the agent should do' : ''}`
        : `${issue.path.join('.') || 'the entry'}: ${issue.message}`;
      problems.push(`${file}:${lineOf(node ?? (item as Node))}: task ${i + 1}: ${what}`);
    }
  });
  const names = new Map<string, number>();
  entries.forEach((e, i) => {
    if (!e.name) return;
    if (names.has(e.name)) problems.push(`${file}:${lineOf(doc.contents && isSeq(doc.contents) ? (doc.contents.items[i] as Node) : null)}: task ${i + 1}: the name "${e.name}" is taken by task ${names.get(e.name)! + 1}`);
    names.set(e.name, i);
  });
  entries.forEach((e, i) => {
    if (e.agent && e.agents) problems.push(`${file}:${lineOf(doc.contents && isSeq(doc.contents) ? (doc.contents.items[i] as Node) : null)}: task ${i + 1}: give either agent or agents, not both`);
  });
  if (problems.length) throw new UserError(problems.join('\n'));
  if (!entries.length) throw new UserError(`${file}: the list of tasks is empty`);

  const base = dirname(file);
  const items = doc.contents.items;
  // Where each `after` was written: an unknown one is named with its line (submit checks the store's runs).
  const afterLine = (i: number) => {
    const item = items[i];
    const pair = isMap(item) ? item.items.find((p) => (p.key as { value?: unknown } | null)?.value === 'after') : undefined;
    return lineOf((pair?.value ?? pair?.key ?? item) as Node);
  };
  return entries.map((e, i) => ({
    task: e.task,
    checks: e.checks,
    repo: e.repo === undefined ? undefined : resolve(base, e.repo),
    base: e.base,
    priority: e.priority,
    // A name of this file becomes "@n" (the n-th task of the batch); anything else is a run id of the store.
    after: e.after === undefined ? undefined : names.has(e.after) ? `@${names.get(e.after)! + 1}` : e.after,
    ...(e.after === undefined || names.has(e.after) ? {} : { afterAt: `${file}:${afterLine(i)}: task ${i + 1}` }),
    runId: e.run_id,
    ...(e.agent ? { agentKind: e.agent } : {}),
    ...(e.agents ? { agents: e.agents } : {}),
    ...(e.attempts !== undefined ? { attempts: e.attempts } : {}),
  }));
}
