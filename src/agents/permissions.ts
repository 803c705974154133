import type { AgentResult, PermissionDenial } from '../core/types.js';

/**
 * Claude Code's permission rules, as Obra uses them. In headless mode (`-p`) the CLI cannot ask: a tool use no
 * rule allows is refused, the agent is told "Claude requested permissions to write to <path>, but you haven't
 * granted it yet" (or "This command requires approval" for Bash), and the result lists it in
 * `permission_denials`. Measured on 2.1.197: `--permission-mode acceptEdits` allows Write/Edit inside the
 * working directory (and simple file commands such as `touch`, `mkdir`), not outside it and not other commands;
 * `--allowedTools "Bash(npm test)"` allows exactly that command, `Bash(npm run:*)` any command starting so.
 */

/** A rule: a tool name, optionally with a specifier in parentheses (`Write`, `Bash(npm run lint:*)`, `WebFetch(domain:x.org)`). */
const RULE = /^[A-Za-z][A-Za-z0-9_-]*(\(.+\))?$/s;

/** Why `rule` is not a permission rule, or null when it is one. */
export function ruleProblem(rule: string): string | null {
  if (!rule.trim()) return 'a permission rule must not be empty';
  if (!RULE.test(rule.trim())) return `"${rule}" is not a Claude Code permission rule — write a tool name, optionally with what it may do in parentheses: Write, Edit, Bash(npm run lint), Bash(git diff:*), WebFetch(domain:example.com)`;
  return null;
}

/** The rules that let the agent run the task's own check commands (each exactly as written). */
export function checkRules(checks: string[]): string[] {
  return checks.map((command) => command.trim()).filter(Boolean).map((command) => `Bash(${command})`);
}

/** The refused tool uses of a result, each with a one-line description and the rule that would allow it. */
export function denialsOf(result: AgentResult | null | undefined): PermissionDenial[] {
  const seen = new Set<string>();
  const out: PermissionDenial[] = [];
  for (const denial of result?.permission_denials ?? []) {
    const tool = String(denial.tool_name ?? 'unknown');
    const input = (denial.tool_input ?? {}) as Record<string, unknown>;
    const entry = { tool, input: describeInput(tool, input), rule: ruleFor(tool, input) };
    const key = `${entry.tool}\u0000${entry.input}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(entry);
  }
  return out;
}

/** The narrowest rule that allows this tool use (a command exactly; file tools by name; a fetch by its domain). */
export function ruleFor(tool: string, input: Record<string, unknown>): string {
  if (tool === 'Bash' && typeof input.command === 'string' && input.command.trim()) return `Bash(${input.command.trim()})`;
  if (tool === 'WebFetch' && typeof input.url === 'string') {
    try {
      return `WebFetch(domain:${new URL(input.url).hostname})`;
    } catch {
      return 'WebFetch';
    }
  }
  return tool;
}

function describeInput(tool: string, input: Record<string, unknown>): string {
  const text =
    typeof input.command === 'string' ? input.command
    : typeof input.file_path === 'string' ? input.file_path
    : typeof input.notebook_path === 'string' ? input.notebook_path
    : typeof input.url === 'string' ? input.url
    : typeof input.path === 'string' ? input.path
    : typeof input.pattern === 'string' ? input.pattern
    : JSON.stringify(input);
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 160 ? `${line.slice(0, 159)}…` : line || tool;
}

/** One line listing denials: `Write /p/notes.txt; Bash: npm run lint`. */
export function describeDenials(denials: PermissionDenial[]): string {
  return denials.map((d) => (d.tool === 'Bash' ? `Bash: ${d.input}` : `${d.tool} ${d.input}`)).join('; ');
}

/** The `--allow` flags that would grant every denial. */
export function allowFlags(denials: PermissionDenial[]): string {
  return [...new Set(denials.map((d) => d.rule))].map((rule) => `--allow ${shellQuote(rule)}`).join(' ');
}

function shellQuote(text: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`;
}
