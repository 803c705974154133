import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
// @ts-expect-error -- a plain .mjs script (no type declarations): it must run with bare node in CI.
import { ensureRealClaude } from '../../scripts/install-real-claude.mjs';

export interface RealClaude {
  bin: string;
  version: string;
}

/**
 * The real Claude Code binary for the real-CLI and contract suites: installed once from the npm registry into
 * `.cache/claude-code/` (`.ci/run` does it before `npm test`; here it is done on demand too).
 * In CI a failed install fails the suite loudly. Locally, when the install is impossible (offline, another
 * platform), the suite is skipped with the reason printed — or on purpose with OBRA_SKIP_REAL_CLI=1.
 */
export async function realClaudeOrSkip(): Promise<{ claude: RealClaude; skip: null } | { claude: null; skip: string }> {
  const inCI = Boolean(process.env.CI) && process.env.CI !== 'false';
  if (process.env.OBRA_SKIP_REAL_CLI === '1' && !inCI) return { claude: null, skip: 'OBRA_SKIP_REAL_CLI=1' };
  try {
    const { bin, version } = (await ensureRealClaude()) as RealClaude;
    return { claude: { bin, version }, skip: null };
  } catch (error) {
    const reason = `the real Claude Code CLI could not be installed: ${(error as Error).message}`;
    if (inCI) throw new Error(`${reason} (CI must run the real-CLI suites; see scripts/install-real-claude.mjs)`);
    process.stderr.write(`SKIPPING real-CLI tests: ${reason}\n`);
    return { claude: null, skip: reason };
  }
}

/**
 * The environment the real CLI needs to run offline against `fixtures/mock-anthropic`: a private HOME (its
 * sessions and settings), the stand-in's URL, a dummy key, no telemetry, no updater. Nothing else leaks in.
 */
export function realEnv(home: string, baseUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  mkdirSync(home, { recursive: true });
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    CLAUDE_CONFIG_DIR: join(home, '.claude'),
    ANTHROPIC_BASE_URL: baseUrl,
    ANTHROPIC_API_KEY: 'dummy',
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_AUTOUPDATER: '1',
    DISABLE_TELEMETRY: '1',
    ...extra,
  };
}
