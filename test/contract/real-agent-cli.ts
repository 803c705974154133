// @ts-expect-error -- a plain .mjs script (no type declarations): it must run with bare node in CI.
import { AGENT_CLIS, ensureAgentCli } from '../../scripts/install-agent-clis.mjs';

/**
 * A real agent CLI for the contract tests, installed once from the npm registry into `.cache/agent-clis/`
 * (`.ci/run` does it before `npm test`; here it is done on demand too). In CI a failed install fails the suite;
 * elsewhere the suite is skipped with one line saying why — or on purpose with OBRA_SKIP_REAL_CLI=1.
 */
export async function realAgentCliOrSkip(cli: string): Promise<{ bin: string; version: string; skip: null } | { bin: null; version: string; skip: string }> {
  const inCI = Boolean(process.env.CI) && process.env.CI !== 'false';
  const version = (AGENT_CLIS as Record<string, { version: string }>)[cli]!.version;
  if (process.env.OBRA_SKIP_REAL_CLI === '1' && !inCI) return { bin: null, version, skip: 'OBRA_SKIP_REAL_CLI=1' };
  try {
    const { bin } = (await ensureAgentCli(cli)) as { bin: string };
    return { bin, version, skip: null };
  } catch (error) {
    const reason = `the real ${cli} CLI could not be installed: ${(error as Error).message}`;
    if (inCI) throw new Error(`${reason} (CI must run the contract suites; see scripts/install-agent-clis.mjs)`);
    process.stderr.write(`SKIPPING real ${cli} contract tests: ${reason}\n`);
    return { bin: null, version, skip: reason };
  }
}
