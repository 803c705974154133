import { readFileSync } from 'node:fs';

/**
 * Whether a process with this pid exists (one we may not signal counts: it exists). A zombie counts too; the
 * callers that care (the lock holders) also compare the process's start time.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** This process's own start time, read once (every lock a worker takes writes it). */
let ownStart: string | null | undefined;

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot); null where there is no /proc. */
export function processStart(pid: number): string | null {
  if (pid === process.pid) return (ownStart ??= readStart(pid));
  return readStart(pid);
}

function readStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: count fields after its closing ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** Whether the process that wrote `{ pid, start }` still runs: the same pid, started at the same time. */
export function holderIsAlive(holder: { pid: number; start: string | null }): boolean {
  if (!isAlive(holder.pid)) return false;
  const start = processStart(holder.pid);
  return holder.start === null || start === null || start === holder.start;
}
