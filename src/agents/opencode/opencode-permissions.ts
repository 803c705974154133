import { dirname, normalize } from 'node:path';
import type { PermissionDenial } from '../../core/types.js';
import type { OpencodeRefusal } from './opencode-stream.js';

/**
 * Obra's promise — the agent edits inside the task's working directory and runs the task's checks, nothing else —
 * in opencode's terms. opencode's own defaults allow every edit and every command in `run`, and an `ask` rule
 * there cannot ask: it rejects the tool call and ends the run with exit 0 and no answer. So Obra never leaves a
 * decision to `ask`: it passes explicit `allow`/`deny` rules in OPENCODE_PERMISSION, which opencode lays over the
 * `permission` of its config files (measured on 1.18.33: a denied call comes back to the model as "The user has
 * specified a rule which prevents you from using this specific tool call", and the turn goes on).
 *
 * - `edit` (default): `edit` allowed; `external_directory` denied (a path outside the working directory — opencode
 *   checks it before the edit rule); `bash` denied but for the task's checks and granted commands; `webfetch` and
 *   `websearch` denied; opencode's own `ask` defaults decided (ASK_DEFAULTS_DECIDED).
 * - `read-only`: as `edit`, with `edit` denied (opencode then does not offer its write tools at all).
 * - `config`: no rules from Obra: opencode's configuration decides (its default allows everything).
 */
export type OpencodePermissionMode = 'edit' | 'read-only' | 'config';

type Action = 'allow' | 'deny';
export type OpencodePermissions = Record<string, Action | Record<string, Action>>;

/** The rule that lets the agent write below a folder outside the working directory: `ExternalDirectory(/data/*)`. */
const EXTERNAL = /^ExternalDirectory\((.+)\)$/;
const BASH = /^Bash\((.+)\)$/;

/**
 * What opencode 1.18.33 asks by default (read from the binary): a third identical tool call in a row (`doom_loop`),
 * reading `.env` files; and the build agent's `question` tool, which would wait for an answer nobody gives.
 */
const ASK_DEFAULTS_DECIDED: OpencodePermissions = {
  doom_loop: 'deny',
  question: 'deny',
  read: { '*': 'allow', '*.env': 'deny', '*.env.*': 'deny', '*.env.example': 'allow' },
};

/** Claude's `Bash(npm run:*)` (any command starting so) is opencode's wildcard `npm run*`. */
const bashPattern = (command: string) => (command.endsWith(':*') ? `${command.slice(0, -2)}*` : command);

/**
 * The OPENCODE_PERMISSION of one call: the mode's rules, widened by the rules the call allows (`allowedTools`:
 * `Bash(npm test)` for a check, what a person granted with `obra answer --allow`). Null for `config`.
 */
export function opencodePermissions(mode: OpencodePermissionMode, allowed: readonly string[]): OpencodePermissions | null {
  if (mode === 'config') return null;
  const rules = allowed.map((rule) => rule.trim());
  const editGranted = rules.some((rule) => rule === 'Write' || rule === 'Edit');
  // `*` first: opencode takes the last rule that matches, so the allowed commands below win over it.
  const bash: Record<string, Action> = { '*': rules.includes('Bash') ? 'allow' : 'deny' };
  const external: Record<string, Action> = { '*': 'deny' };
  for (const rule of rules) {
    const command = BASH.exec(rule)?.[1]?.trim();
    if (command) bash[bashPattern(command)] = 'allow';
    const folder = EXTERNAL.exec(rule)?.[1]?.trim();
    if (folder) external[folder] = 'allow';
  }
  const web: Action = rules.some((rule) => rule === 'WebFetch' || rule.startsWith('WebFetch(')) ? 'allow' : 'deny';
  return {
    edit: mode === 'edit' || editGranted ? 'allow' : 'deny',
    bash,
    external_directory: external,
    webfetch: web,
    websearch: web,
    // opencode's own `ask` defaults, which in `run` would end the call silently: decided here instead.
    ...ASK_DEFAULTS_DECIDED,
  };
}

/** The refusals of a call as Obra records them, each with the rule `obra answer --allow` takes to lift it. */
export function opencodeDenials(refused: readonly OpencodeRefusal[]): PermissionDenial[] {
  const seen = new Set<string>();
  const out: PermissionDenial[] = [];
  for (const r of refused) {
    const denial = { tool: r.tool, input: r.input, rule: ruleFor(r) };
    const key = `${denial.tool}\u0000${denial.input}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(denial);
  }
  return out;
}

function ruleFor(r: OpencodeRefusal): string {
  // A file tool names the path; a command reaching outside names none Obra could narrow the grant to.
  if (r.outside) return r.tool === 'bash' ? 'ExternalDirectory(*)' : `ExternalDirectory(${dirname(normalize(r.input))}/*)`;
  if (r.tool === 'bash') return r.why === 'unavailable' ? 'Bash' : `Bash(${r.input})`;
  if (r.tool === 'webfetch' || r.tool === 'websearch') return 'WebFetch';
  return 'Write';
}
