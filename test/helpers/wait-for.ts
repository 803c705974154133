/**
 * Resolves once `condition` holds, polling every `everyMs` (default 20); rejects after `timeoutMs` (default
 * 10 s) with `what` in the message. Tests wait on what they mean to see, never for a fixed time.
 */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  options: { timeoutMs?: number; everyMs?: number; what?: string } = {},
): Promise<void> {
  const { timeoutMs = 10_000, everyMs = 20, what = 'the condition' } = options;
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
