import type { AgentKind, ObraConfig } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import type { Agent } from './agent.js';
import { ClaudeCodeAgent, type ClaudeCodeAgentOptions } from './claude-code-agent.js';
import { CodexAgent } from './codex/codex-agent.js';
import { GeminiAgent } from './gemini/gemini-agent.js';
import { OpencodeAgent } from './opencode/opencode-agent.js';
import { QwenAgent } from './qwen/qwen-agent.js';
import { priceFor } from './usage.js';
import type { CliAgentOptions } from './cli-agent.js';
import { agentSectionOf } from '../config/flags.js';

/**
 * The one place an agent CLI is chosen: `agentFor(kind, config)` builds the agent `agent.kind` names, from its
 * section of the config (`agent.local` for Claude Code, `agent.codex`, ...). The run file records the kind, the
 * binary and the extra environment (`agentSpecOf`), so a resumed run or a worker builds the same agent again.
 */

/** What a run file keeps of its agent. */
export interface AgentSpec {
  name: string;
  kind?: AgentKind;
  command?: string;
  env?: Record<string, string>;
}

/** The agent names of the CLI agents, by kind (what `Agent.name` says, what run files hold). */
export const CLI_AGENT_NAMES: Readonly<Record<string, AgentKind>> = { 'claude-code': 'claude', codex: 'codex', gemini: 'gemini', qwen: 'qwen', opencode: 'opencode' };

/** The kinds this Obra can drive. */
export const BUILT_KINDS: readonly AgentKind[] = ['claude', 'codex', 'gemini', 'qwen', 'opencode'];

/** A binary for the run's agent, whatever its kind (a string: `--agent-bin` on resume), or one per kind. */
export type AgentCommand = string | Partial<Record<AgentKind, string>>;

/** The binary a config names for an agent kind (Claude Code's agent.local.command, the others' agent.<kind>.command). */
export const configuredCommand = (config: ObraConfig, kind: AgentKind): string => config.agent[agentSectionOf(kind)].command;

export const commandFor = (kind: AgentKind, command: AgentCommand | undefined): string | undefined => (typeof command === 'string' ? command : command?.[kind]);

/** What a launch sets of an agent: its binary (`--agent-bin`, a worker's own) and extra environment. */
type Launch = { command?: string; env?: Record<string, string> };

/** The options every other CLI's agent takes from its section (`agent.<kind>`), the timeouts agent.local's unless set there. */
function cliOptionsFromConfig(config: ObraConfig, kind: Exclude<AgentKind, 'claude'>, launch: Launch): CliAgentOptions {
  const local = config.agent.local;
  const section = config.agent[kind];
  return {
    command: launch.command ?? section.command,
    timeoutMs: (section.timeout ?? local.timeout) * 1000,
    idleTimeoutMs: (section.idle_timeout ?? local.idle_timeout) * 1000,
    model: section.model,
    extraArgs: section.extra_args,
    env: launch.env,
    price: priceFor(config.agent.prices, section.model, kind),
  };
}

export function agentFor(kind: AgentKind, config: ObraConfig, launch: Launch = {}): Agent {
  switch (kind) {
    case 'claude':
      return new ClaudeCodeAgent({ ...claudeOptionsFromConfig(config), ...(launch.command ? { command: launch.command } : {}), env: launch.env });
    case 'codex': {
      const codex = config.agent.codex;
      return new CodexAgent({ ...cliOptionsFromConfig(config, 'codex', launch), sandbox: codex.sandbox, allowTmpWrites: codex.allow_tmp_writes, home: codex.home });
    }
    case 'gemini':
      return new GeminiAgent({ ...cliOptionsFromConfig(config, 'gemini', launch), approvalMode: config.agent.gemini.approval_mode });
    case 'qwen':
      return new QwenAgent({ ...cliOptionsFromConfig(config, 'qwen', launch), approvalMode: config.agent.qwen.approval_mode });
    case 'opencode':
      return new OpencodeAgent({ ...cliOptionsFromConfig(config, 'opencode', launch), permissionMode: config.agent.opencode.permission_mode });
    default:
      throw new UserError(`agent.kind "${kind}" is not built into this Obra yet — use one of ${BUILT_KINDS.join(', ')} (--agent ${BUILT_KINDS.join('|')})`);
  }
}

/** The kind of a stored agent spec: its own, else the name's, else null (an in-process agent). */
export function kindOfSpec(spec: AgentSpec): AgentKind | null {
  return spec.kind ?? CLI_AGENT_NAMES[spec.name] ?? null;
}

/**
 * The store's file of an agent account's limits: a usage limit or a rate limit of one vendor parks that vendor's
 * tasks only. Claude Code keeps `limits.json` (and so does an in-process agent); the others `limits.<kind>.json`.
 */
export function limitsFileOf(spec: AgentSpec): string {
  const kind = kindOfSpec(spec);
  return kind && kind !== 'claude' ? `limits.${kind}.json` : 'limits.json';
}

/** What the run file records of `agent`: enough to build it again on resume or on a worker. */
export function agentSpecOf(agent: Agent): AgentSpec {
  if (agent instanceof ClaudeCodeAgent) return { name: agent.name, kind: 'claude', command: agent.options.command, env: agent.options.env };
  if (agent instanceof CodexAgent) return { name: agent.name, kind: 'codex', command: agent.options.command, env: agent.options.env };
  if (agent instanceof GeminiAgent) return { name: agent.name, kind: 'gemini', command: agent.options.command, env: agent.options.env };
  if (agent instanceof QwenAgent) return { name: agent.name, kind: 'qwen', command: agent.options.command, env: agent.options.env };
  if (agent instanceof OpencodeAgent) return { name: agent.name, kind: 'opencode', command: agent.options.command, env: agent.options.env };
  return { name: agent.name };
}

/** Rebuilds a run's agent from its spec and the config it started with; `command` replaces the binary. */
export function agentFromSpec(spec: AgentSpec, config: ObraConfig, command: AgentCommand | undefined, runId: string): Agent {
  const kind = kindOfSpec(spec);
  if (!kind) throw new UserError(`run ${runId} was driven by the in-process agent "${spec.name}"; resume it from your script with resumeRun(runId, { agent })`);
  return agentFor(kind, config, { command: commandFor(kind, command) ?? spec.command, env: spec.env });
}

export function claudeOptionsFromConfig(config: ObraConfig): ClaudeCodeAgentOptions {
  const local = config.agent.local;
  return {
    command: local.command,
    timeoutMs: local.timeout * 1000,
    idleTimeoutMs: local.idle_timeout * 1000,
    apiTimeoutMs: local.api_timeout === undefined ? undefined : local.api_timeout * 1000,
    extraArgs: local.extra_args,
    model: local.model,
    maxTurns: local.max_turns,
    permissionMode: local.permission_mode,
    allowedTools: local.allowed_tools,
    skipPermissions: local.dangerously_skip_permissions,
    appendSystemPrompt: local.append_system_prompt,
  };
}
