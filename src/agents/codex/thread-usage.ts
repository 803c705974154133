import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CodexUsage } from './codex-stream.js';

/**
 * Codex reports usage as the running total of the whole thread (1007 → 2016 → 4044 input tokens over three
 * resumed turns): the call's own share is the difference from the total the thread's previous call reported.
 * That total is kept beside the CLI's sessions (`<CODEX_HOME>/obra-usage/<thread>.json`), so it survives Obra's
 * restarts as long as the thread itself does.
 */
export class ThreadUsage {
  constructor(private readonly codexHome: string) {}

  private path(threadId: string): string {
    return join(this.codexHome, 'obra-usage', `${threadId.replace(/[^A-Za-z0-9-]/g, '_')}.json`);
  }

  previous(threadId: string): CodexUsage | null {
    try {
      const json = JSON.parse(readFileSync(this.path(threadId), 'utf8')) as CodexUsage;
      return typeof json.input_tokens === 'number' ? json : null;
    } catch {
      return null;
    }
  }

  /** Records `total` as the thread's running total and returns this call's share of it. */
  take(threadId: string, total: CodexUsage): CodexUsage {
    const before = this.previous(threadId);
    const file = this.path(threadId);
    try {
      mkdirSync(join(this.codexHome, 'obra-usage'), { recursive: true });
      writeFileSync(`${file}.tmp`, JSON.stringify(total));
      renameSync(`${file}.tmp`, file);
    } catch {
      // A read-only CODEX_HOME: the next call counts from the start of the thread (an overestimate, never less).
    }
    return deltaOf(total, before);
  }
}

/** `total` minus `before`, per field; a total below its predecessor (a new thread under the same id) counts whole. */
export function deltaOf(total: CodexUsage, before: CodexUsage | null): CodexUsage {
  if (!before || total.input_tokens < before.input_tokens || total.output_tokens < before.output_tokens) return total;
  return {
    input_tokens: total.input_tokens - before.input_tokens,
    cached_input_tokens: Math.max(0, total.cached_input_tokens - before.cached_input_tokens),
    output_tokens: total.output_tokens - before.output_tokens,
  };
}
