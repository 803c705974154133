/** The JSON object one line of a CLI's JSON stream holds; null for a line that is not one (a log line, junk). */
export function jsonObjectOf(line: string): Record<string, unknown> | null {
  if (!line.startsWith('{')) return null;
  try {
    const event = JSON.parse(line) as unknown;
    return event && typeof event === 'object' ? (event as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** A whole stream's JSON objects, in order, and how many of its non-empty lines were not one. */
export function jsonEventsOf(stdout: string): { events: Record<string, unknown>[]; junk: number } {
  const events: Record<string, unknown>[] = [];
  let junk = 0;
  for (const raw of stdout.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const event = jsonObjectOf(line);
    if (event) events.push(event);
    else junk++;
  }
  return { events, junk };
}
