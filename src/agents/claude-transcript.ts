/**
 * Reads a Claude Code session transcript (`<config dir>/projects/<cwd>/<session>.jsonl`, one JSON entry a line:
 * `user` entries hold prompts and tool results, `assistant` entries the model's text and tool uses; see the
 * fake CLI in fixtures/fake-claude and the README's "CLI contract") to tell what became of a turn whose caller
 * died before it heard the end.
 */

/** What the transcript holds of one prompt's turn. */
export type TurnInTranscript =
  | { kind: 'absent' }
  | { kind: 'unanswered' }
  | { kind: 'answered'; text: string; assistantEntries: number };

interface Entry {
  type?: unknown;
  isSidechain?: unknown;
  isMeta?: unknown;
  message?: { role?: unknown; content?: unknown; stop_reason?: unknown; id?: unknown };
}

/** Stop reasons after which the model was still going (a tool to run, a reply cut by its token limit). */
const UNFINISHED_STOPS = new Set(['tool_use', 'max_tokens', 'pause_turn']);

/**
 * The turn `prompt` started, in the transcript's text: the last `user` entry whose text is the prompt, and what
 * follows it up to the next prompt. It is `answered` when the last entry there is the assistant's text with no
 * tool use pending (a turn the CLI finished), `unanswered` when the prompt is there without that (the process was
 * stopped mid-turn: nothing after it, a tool use without its result, a half-written last line).
 */
export function turnOf(transcript: string, prompt: string): TurnInTranscript {
  const entries = transcript.split('\n').flatMap((line): Entry[] => {
    if (!line.trim()) return [];
    try {
      const entry = JSON.parse(line) as unknown;
      return entry && typeof entry === 'object' ? [entry as Entry] : [];
    } catch {
      // A line cut by the kill: whatever it was, the turn did not finish cleanly after it.
      return [{ type: 'cut' }];
    }
  });
  const wanted = prompt.trim();
  let start = -1;
  for (let i = entries.length - 1; i >= 0; i--) {
    if (isPrompt(entries[i]!) && textOf(entries[i]!.message?.content).trim() === wanted) {
      start = i;
      break;
    }
  }
  if (start < 0) return { kind: 'absent' };
  const turn: Entry[] = [];
  for (const entry of entries.slice(start + 1)) {
    if (isPrompt(entry)) break;
    if (entry.isSidechain === true) continue; // a sub-agent's own conversation
    if (entry.type === 'user' || entry.type === 'assistant' || entry.type === 'cut') turn.push(entry);
  }
  const last = turn.at(-1);
  if (!last || last.type !== 'assistant') return { kind: 'unanswered' };
  const content = last.message?.content;
  const stop = last.message?.stop_reason;
  if (hasToolUse(content) || (typeof stop === 'string' && UNFINISHED_STOPS.has(stop))) return { kind: 'unanswered' };
  // The CLI writes one entry per content block of a message: the answer is every text block of the last message.
  const id = last.message?.id;
  let first = turn.length - 1;
  while (id !== undefined && first > 0 && turn[first - 1]!.type === 'assistant' && turn[first - 1]!.message?.id === id) first--;
  const text = turn.slice(first).map((entry) => textOf(entry.message?.content)).filter(Boolean).join('\n');
  if (!text.trim()) return { kind: 'unanswered' };
  return { kind: 'answered', text, assistantEntries: turn.filter((entry) => entry.type === 'assistant').length };
}

/** A person's (Obra's) prompt, not a tool's result fed back to the model. */
function isPrompt(entry: Entry): boolean {
  if (entry.type !== 'user' || entry.isMeta === true || entry.isSidechain === true) return false;
  const content = entry.message?.content;
  if (typeof content === 'string') return true;
  return Array.isArray(content) && content.some((block) => (block as { type?: unknown })?.type === 'text');
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .map((block) => ((block as { type?: unknown })?.type === 'text' ? String((block as { text?: unknown }).text ?? '') : ''))
    .filter(Boolean)
    .join('\n');
}

function hasToolUse(content: unknown): boolean {
  return Array.isArray(content) && content.some((block) => (block as { type?: unknown })?.type === 'tool_use');
}
