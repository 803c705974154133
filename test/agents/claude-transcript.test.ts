import { describe, expect, it } from 'vitest';
import { turnOf } from '../../src/agents/claude-transcript.js';

/**
 * What a Claude Code transcript says of a turn whose caller died: the fake CLI's entries (plain string contents)
 * and the real CLI's (content blocks, one entry per block of a message, tool uses and their results).
 */
const line = (entry: unknown) => `${JSON.stringify(entry)}\n`;
const prompt = (text: string) => line({ type: 'user', message: { role: 'user', content: text } });
const answer = (text: string) => line({ type: 'assistant', message: { role: 'assistant', content: text } });
const block = (id: string, content: unknown[], stop: string | null = null) => line({ type: 'assistant', message: { id, role: 'assistant', content, stop_reason: stop } });
const toolResult = (id: string) => line({ type: 'user', message: { role: 'user', content: [{ type: 'tool_result', tool_use_id: id, content: 'ok' }] } });

describe('turnOf: a cut turn in a session transcript', () => {
  it('finds the answer that followed the prompt (the fake CLI: string contents)', () => {
    const text = prompt('Iteration 1: do A') + answer('Did A.\nSTATUS: CONTINUE') + prompt('Iteration 2: do B') + answer('Did B.\nSTATUS: DONE');
    expect(turnOf(text, 'Iteration 2: do B')).toEqual({ kind: 'answered', text: 'Did B.\nSTATUS: DONE', assistantEntries: 1 });
    expect(turnOf(text, 'Iteration 1: do A\n')).toEqual({ kind: 'answered', text: 'Did A.\nSTATUS: CONTINUE', assistantEntries: 1 });
  });

  it('says unanswered when the prompt is there with nothing, a tool use without its result, or a cut line after it', () => {
    const before = prompt('Iteration 1: do A') + answer('Did A.');
    expect(turnOf(before + prompt('Iteration 2: do B'), 'Iteration 2: do B')).toEqual({ kind: 'unanswered' });
    const toolPending = before + prompt('Iteration 2: do B') + block('m1', [{ type: 'text', text: 'Let me edit.' }, { type: 'tool_use', id: 't1', name: 'Write', input: {} }], 'tool_use');
    expect(turnOf(toolPending, 'Iteration 2: do B')).toEqual({ kind: 'unanswered' });
    const afterResult = toolPending + toolResult('t1');
    expect(turnOf(afterResult, 'Iteration 2: do B')).toEqual({ kind: 'unanswered' });
    expect(turnOf(before + prompt('Iteration 2: do B') + '{"type":"assistant","mess', 'Iteration 2: do B')).toEqual({ kind: 'unanswered' });
    const maxTokens = before + prompt('Iteration 2: do B') + block('m2', [{ type: 'text', text: 'Half an ans' }], 'max_tokens');
    expect(turnOf(maxTokens, 'Iteration 2: do B')).toEqual({ kind: 'unanswered' });
  });

  it('says absent when the prompt never reached the session', () => {
    expect(turnOf(prompt('Iteration 1: do A') + answer('Did A.'), 'Iteration 2: do B')).toEqual({ kind: 'absent' });
    expect(turnOf('', 'Iteration 1: do A')).toEqual({ kind: 'absent' });
  });

  it('takes every text block of the last message after tool uses (the real CLI: content blocks, one entry each)', () => {
    const text =
      line({ type: 'user', message: { role: 'user', content: [{ type: 'text', text: 'Iteration 1: do A' }] } }) +
      block('m1', [{ type: 'tool_use', id: 't1', name: 'Bash', input: { command: 'ls' } }], 'tool_use') +
      toolResult('t1') +
      line({ type: 'assistant', isSidechain: true, message: { id: 'sub', role: 'assistant', content: [{ type: 'text', text: 'a sub-agent' }] } }) +
      block('m2', [{ type: 'text', text: 'Listed the files.' }]) +
      block('m2', [{ type: 'text', text: 'STATUS: DONE' }], 'end_turn') +
      line({ type: 'summary', summary: 'A session' });
    expect(turnOf(text, 'Iteration 1: do A')).toEqual({ kind: 'answered', text: 'Listed the files.\nSTATUS: DONE', assistantEntries: 3 });
  });
});
