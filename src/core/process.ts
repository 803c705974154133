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
