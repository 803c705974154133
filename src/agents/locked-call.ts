import type { AgentCallRecord, AgentOutcome } from '../core/types.js';
import type { AgentCallRequest } from './agent.js';
import type { CliRun } from './cli-process.js';
import type { SessionLocks } from './session-lock.js';

/** A call refused because another holds the session's lock. */
export function sessionBusy(sessionId: string, holder: string): AgentOutcome {
  return { kind: 'sessionBusy', holder, message: `Session ${sessionId} is in use by ${holder} (Obra's session lock)` };
}

/**
 * A CLI call under Obra's lock of its session: a session in use is refused (`refuse`, with nothing started); the
 * CLI's process is recorded with the lock (a later call of the session kills it if it outlives its caller) and
 * reported as started.
 */
export async function underSessionLock(
  locks: SessionLocks,
  call: { sessionId: string; argv: string[]; request: AgentCallRequest },
  refuse: (outcome: AgentOutcome) => AgentCallRecord,
  run: (onSpawn: (pid: number) => void) => Promise<AgentCallRecord>,
): Promise<AgentCallRecord> {
  const { sessionId, argv, request } = call;
  const lock = locks.tryAcquire(sessionId);
  if (!lock.ok) return refuse(sessionBusy(sessionId, lock.holder));
  try {
    return await run((pid) => {
      lock.recordChild(pid);
      request.onProgress?.({ kind: 'started', sessionId, argv });
    });
  } finally {
    lock.release();
  }
}

/** The limits of an agent's options that every CLI call runs under (see runCli). */
export function cliLimits(options: { timeoutMs: number; idleTimeoutMs?: number | null; killGraceMs?: number; maxOutputBytes?: number }): Pick<CliRun, 'timeoutMs' | 'idleTimeoutMs' | 'killGraceMs' | 'maxOutputBytes'> {
  return { timeoutMs: options.timeoutMs, idleTimeoutMs: options.idleTimeoutMs ?? null, killGraceMs: options.killGraceMs, maxOutputBytes: options.maxOutputBytes };
}
