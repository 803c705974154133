import type { AgentOutcome } from '../core/types.js';
import type { RawCall } from './classify.js';

/** How an agent CLI is named in messages: its kind (its binary, its config section `agent.<kind>`), product and npm package. */
export interface CliNames {
  kind: string;
  product: string;
  npmPackage: string;
}

/**
 * The outcome of a CLI call that did not run to its own end — it could not be started, was stopped (the wall
 * clock, the run's abort, the idle watchdog) or printed more than allowed — the same for every CLI but Claude
 * Code; null for a call that ended by itself, which each CLI's classifier reads.
 */
export function stoppedOutcome(call: RawCall, cli: CliNames): Exclude<AgentOutcome, { kind: 'answer' }> | null {
  const { kind, product, npmPackage } = cli;
  if (call.spawnError) {
    if (call.spawnCode === 'ENOENT') return { kind: 'fatal', message: `the ${kind} binary was not found — install ${product} (npm i -g ${npmPackage}) or set agent.${kind}.command / --agent-bin` };
    return { kind: 'fatal', message: `${kind} could not be started (${call.spawnError})` };
  }
  if (call.stoppedBy === 'timeout') return { kind: 'timeout', message: `the agent did not finish within ${(call.timeoutMs / 1000).toFixed(1)}s and was killed` };
  if (call.stoppedBy === 'abort') return { kind: 'crashed', message: 'the call was aborted (run cancelled)' };
  if (call.stoppedBy === 'idle') {
    const idleMs = call.idleMs ?? 0;
    return { kind: 'stalled', idleMs, message: `${kind} printed nothing for ${(idleMs / 1000).toFixed(0)}s and was killed (agent.${kind}.idle_timeout / agent.local.idle_timeout)` };
  }
  if (call.overflow) return { kind: 'malformed', message: 'the agent printed more output than allowed and was stopped', raw: call.stdout.slice(0, 16 * 1024) };
  return null;
}

/** The first line of a CLI's stderr worth showing: trimmed, not empty, and not the CLI's own `noise`. */
export function firstStderrLine(stderr: string, noise?: RegExp): string {
  for (const line of stderr.split('\n')) {
    const text = line.trim();
    if (text && !noise?.test(text)) return text;
  }
  return '';
}

/** A call the CLI ended badly by itself — killed by a signal, or a non-zero exit — with the first thing it said. */
export function crashedOutcome(call: RawCall, said: string): Extract<AgentOutcome, { kind: 'crashed' }> {
  if (call.signal) return { kind: 'crashed', message: `the agent was killed by ${call.signal}${said ? `: ${said}` : ''}` };
  return { kind: 'crashed', message: `the agent exited with code ${call.exitCode}${said ? `: ${said}` : ' and printed nothing'}` };
}
