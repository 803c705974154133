/**
 * Another Obra process for the session-lock benchmark: makes one call on a session through ClaudeCodeAgent
 * (so it holds Obra's lock file for the whole call), prints when it got and released the session, and exits.
 *
 *   npx tsx bench/session-lock/holder.ts <lockDir> <sessionId> <workdir> <holdMs> <configDir>
 */
import { ClaudeCodeAgent } from '../../src/agents/claude-code-agent.js';
import { SessionLocks } from '../../src/agents/session-lock.js';
import { fakeClaudePath } from '../../src/cli/paths.js';

const [lockDir, sessionId, workdir, holdMs, configDir] = process.argv.slice(2);
const agent = new ClaudeCodeAgent({
  command: fakeClaudePath(),
  timeoutMs: 60_000,
  locks: new SessionLocks(lockDir!),
  env: { CLAUDE_CONFIG_DIR: configDir!, FAKE_CLAUDE_LATENCY_MS: holdMs!, FAKE_CLAUDE_STATE_DIR: `${configDir}/holder-state` },
});
process.stdout.write(`ready ${Date.now()}\n`);
const call = await agent.call({ runId: 'holder', index: 1, attempt: 1, prompt: 'hold the session', sessionId: sessionId!, mode: 'resume', workdir: workdir! });
process.stdout.write(`released ${Date.now()} ${call.outcome.kind}\n`);
