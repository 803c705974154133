import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ClaudeCodeAgent, type ClaudeCodeAgentOptions } from '../../src/agents/claude-code-agent.js';
import { SessionLocks } from '../../src/agents/session-lock.js';
import { configSchema, type ConfigInput, type ObraConfig } from '../../src/config/schema.js';
import { isAlive as processExists } from '../../src/core/process.js';

export const ROOT = resolve(import.meta.dirname, '../..');
export const FAKE_CLAUDE = join(ROOT, 'fixtures/fake-claude');

export interface FakeLogEntry {
  pid: number;
  startedAt: number;
  at: number;
  cwd: string;
  argv: string[];
  session?: string;
  call?: number;
  outcome: string;
  mode?: string;
  childPid?: number;
}

/**
 * A scratch world for fake-claude: a working directory, a config dir for its transcripts, a log of every
 * invocation, and a lock folder of its own (so tests never see each other's locks).
 */
export function fakeWorld(name = 'agent') {
  const root = mkdtempSync(join(tmpdir(), `obra-${name}-`));
  const workdir = join(root, 'work');
  const configDir = join(root, 'claude-home');
  mkdirSync(workdir, { recursive: true });
  const log = join(root, 'fake-claude.log');
  const locks = new SessionLocks(join(root, 'locks'));
  const env = (extra: Record<string, string> = {}): Record<string, string> => ({
    CLAUDE_CONFIG_DIR: configDir,
    FAKE_CLAUDE_LOG: log,
    ...extra,
  });
  return {
    root,
    workdir,
    configDir,
    locks,
    env,
    agent(extra: Record<string, string> = {}, options: Partial<ClaudeCodeAgentOptions> = {}) {
      return new ClaudeCodeAgent({ command: FAKE_CLAUDE, timeoutMs: 20_000, env: env(extra), locks, killGraceMs: 300, ...options });
    },
    /** Every fake-claude invocation so far, in order. */
    calls(): FakeLogEntry[] {
      if (!existsSync(log)) return [];
      return readFileSync(log, 'utf8').trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as FakeLogEntry);
    },
    /** The session flags of every call that got past argument parsing: `create U`, `resume U`, `fork U`. */
    sessionFlags(): string[] {
      return this.calls()
        .filter((c) => c.outcome !== 'hang-child')
        .map((c) => {
          const at = (flag: string) => c.argv[c.argv.indexOf(flag) + 1];
          if (c.argv.includes('--fork-session')) return `fork ${at('--resume')}`;
          if (c.argv.includes('--resume')) return `resume ${at('--resume')}`;
          return `create ${at('--session-id')}`;
        });
    },
    transcript(sessionId: string): string[] {
      const file = join(configDir, 'projects', resolve(workdir).replace(/[^a-zA-Z0-9]/g, '-'), `${sessionId}.jsonl`);
      return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').filter(Boolean) : [];
    },
  };
}

export function config(input: ConfigInput = {}): ObraConfig {
  return configSchema.parse(input);
}

/** Resolves when `predicate` holds, polling every few ms (for waiting on child processes in tests only). */
export async function until(predicate: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Whether `pid` still runs. A zombie (dead, waiting for PID 1 to reap it) does not count: it runs nothing. */
export function isAlive(pid: number): boolean {
  if (!processExists(pid)) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return true; // no /proc: trust kill(0)
  }
}
