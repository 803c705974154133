import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentCallRequest } from '../../src/agents/agent.js';
import type { RawCall } from '../../src/agents/classify.js';
import { SessionLocks } from '../../src/agents/session-lock.js';
import { ROOT } from './fake-env.js';

/** The recorded samples of a real CLI (fixtures/agent-clis/<kind>): a file's text, or a `.timed.jsonl` one as a call. */
export function cliSamples(kind: string) {
  const dir = join(ROOT, 'fixtures/agent-clis', kind);
  const sample = (name: string) => readFileSync(join(dir, name), 'utf8');
  /** A `.timed.jsonl` sample as the call's stdout, stderr and exit code. */
  function timed(name: string): { stdout: string; stderr: string; exitCode: number | null } {
    const lines = sample(name).trim().split('\n').map((l) => JSON.parse(l) as { event?: unknown; stderr?: string; exit?: string });
    const exit = lines.find((l) => l.exit?.startsWith('exit code='))?.exit;
    return {
      stdout: lines.filter((l) => l.event).map((l) => JSON.stringify(l.event)).join('\n'),
      stderr: lines.filter((l) => l.stderr !== undefined).map((l) => l.stderr).join('\n'),
      exitCode: exit ? Number(/exit code=(\d+)/.exec(exit)?.[1] ?? NaN) : null,
    };
  }
  return { dir, sample, timed };
}

/** A finished call as runCli reports it: exit 0 and nothing printed, but for `over`. */
export const raw = (over: Partial<RawCall>): RawCall => ({ stdout: '', stderr: '', exitCode: 0, signal: null, stoppedBy: null, timeoutMs: 60_000, spawnError: null, overflow: false, ...over });

/**
 * A scratch world for a fake CLI (fixtures/fake-<kind>): a working directory, a lock folder of its own, the fake's
 * log of its calls, and requests in that directory with `sessionId` unless told otherwise.
 */
export function fakeCliWorld(kind: string, sessionId: string | null) {
  const root = mkdtempSync(join(tmpdir(), `obra-${kind}-`));
  const workdir = join(root, 'work');
  mkdirSync(workdir);
  const log = join(root, `fake-${kind}.log`);
  const locks = new SessionLocks(join(root, 'locks'));
  const request = (over: Partial<AgentCallRequest> = {}): AgentCallRequest => ({ runId: 'r', index: 1, attempt: 1, prompt: 'Do the task.', sessionId, mode: 'create', workdir, ...over });
  const calls = <Entry = { pid: number; outcome: string }>() => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Entry) : []);
  return { root, workdir, log, locks, request, calls };
}
