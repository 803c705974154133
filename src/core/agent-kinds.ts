/** The agent CLIs Obra can drive (`agent.kind`); `claude` is configured by `agent.local`, the others by `agent.<kind>`. */
export const AGENT_KINDS = ['claude', 'codex', 'gemini', 'qwen', 'opencode'] as const;
export type AgentKind = (typeof AGENT_KINDS)[number];

/**
 * The binaries a worker (`obra work`, `obra worker`) uses instead of the ones its tasks were submitted with:
 * `--agent-bin` for the tasks of the configured kind (`agent.kind`), the environment's for each kind.
 */
export function workerBinaries(agentBin: string | undefined, kind: AgentKind, env: NodeJS.ProcessEnv): Partial<Record<AgentKind, string>> {
  return { ...binariesFromEnv(env), ...(agentBin ? { [kind]: agentBin } : {}) };
}

/** The binaries the environment names per kind (OBRA_CLAUDE_BIN, OBRA_CODEX_BIN): they replace a run's own on resume. */
export function binariesFromEnv(env: NodeJS.ProcessEnv): Partial<Record<AgentKind, string>> {
  return {
    ...(env.OBRA_CLAUDE_BIN ? { claude: env.OBRA_CLAUDE_BIN } : {}),
    ...(env.OBRA_CODEX_BIN ? { codex: env.OBRA_CODEX_BIN } : {}),
    ...(env.OBRA_GEMINI_BIN ? { gemini: env.OBRA_GEMINI_BIN } : {}),
    ...(env.OBRA_QWEN_BIN ? { qwen: env.OBRA_QWEN_BIN } : {}),
    ...(env.OBRA_OPENCODE_BIN ? { opencode: env.OBRA_OPENCODE_BIN } : {}),
  };
}
