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
