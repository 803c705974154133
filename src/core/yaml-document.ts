import { LineCounter, parseDocument, type Document } from 'yaml';
import { UserError } from './errors.js';

/**
 * Parses a YAML file's text, or throws its first syntax error as one line: `<file>:<line>:<col>: <message>`.
 * The yaml package's pretty messages end in "at line 2, column 1:" followed by a code excerpt on further
 * lines; its plain message and a LineCounter give the same place without the dangling tail.
 */
export function parseYamlDocument(file: string, text: string): { doc: Document.Parsed; lines: LineCounter } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const first = doc.errors[0];
  if (first) {
    const { line, col } = lines.linePos(first.pos[0]);
    throw new UserError(`${file}:${line}:${col}: ${first.message.split('\n')[0]!.trim()}`);
  }
  return { doc, lines };
}
