#!/usr/bin/env node
// bench/board's Claude Code: the fake CLI (fixtures/fake-claude), its stdout passed through line by line, and
// the moment each assistant line is printed noted in BENCH_PRINTED (one JSON line: at, texts, files): when the
// CLI printed an event, for the "printed → on the run page's stream" measure.
import { spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';

const fake = join(import.meta.dirname, '../../fixtures/fake-claude');
const child = spawn(process.execPath, [fake, ...process.argv.slice(2)], { stdio: ['inherit', 'pipe', 'inherit'] });
let buffer = '';
child.stdout.on('data', (chunk) => {
  buffer += chunk.toString();
  let end;
  while ((end = buffer.indexOf('\n')) >= 0) {
    const line = buffer.slice(0, end + 1);
    buffer = buffer.slice(end + 1);
    process.stdout.write(line);
    const at = Date.now();
    try {
      const event = JSON.parse(line);
      if (event.type !== 'assistant') continue;
      const content = event.message?.content ?? [];
      const files = content.filter((b) => b.type === 'tool_use' && b.input?.file_path).map((b) => b.input.file_path);
      const texts = content.filter((b) => b.type === 'text').map((b) => b.text);
      if (process.env.BENCH_PRINTED) appendFileSync(process.env.BENCH_PRINTED, `${JSON.stringify({ at, files, texts })}\n`);
    } catch {
      // Not JSON: passed through as it is.
    }
  }
});
child.on('exit', (code, signal) => {
  if (buffer) process.stdout.write(buffer);
  process.exitCode = code ?? (signal ? 1 : 0);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => child.kill(signal));
