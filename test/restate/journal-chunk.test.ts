import { mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import { configSchema } from '../../src/config/schema.js';
import type { IterationRecord } from '../../src/core/types.js';
import { chunkText, linesOf, packLines, packRecord, recordOf } from '../../src/hosts/restate/journal-chunk.js';
import { runTask } from '../../src/index.js';

/** A real run's journal lines, by iteration, and its records (a local run of 6 iterations). */
let byIteration: string[][];
let records: IterationRecord[];

beforeAll(async () => {
  const root = mkdtempSync(join(tmpdir(), 'obra-journal-chunk-'));
  const workdir = join(root, 'work');
  mkdirSync(workdir);
  const agent = new ScriptedAgent((r) => (r.index < 6 ? `Step ${r.index}: one more part split.\nSTATUS: CONTINUE` : 'All parts split.\nSTATUS: DONE'));
  const result = await runTask({ task: 'Split the parser', workdir, storeDir: join(root, 'store'), config: configSchema.parse({ task: { max_iterations: 8 } }), agent });
  expect(result.status).toBe('done');
  const runDir = join(root, 'store', 'runs', readdirSync(join(root, 'store', 'runs'))[0]!);
  const groups = new Map<number, string[]>();
  for (const line of readFileSync(join(runDir, 'journal.jsonl'), 'utf8').trim().split('\n')) {
    const index = (JSON.parse(line) as { iteration?: { index: number } | null }).iteration?.index ?? 0;
    groups.set(index, [...(groups.get(index) ?? []), line]);
  }
  byIteration = [...groups.values()];
  records = readFileSync(join(runDir, 'iterations.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as IterationRecord);
});

describe('journal chunks and records packed against the one before them', () => {
  it('unpacks each chunk with the text of the one before it, and packs an iteration in a fraction of gzip alone', () => {
    let previous: string | null = null;
    for (const [i, lines] of byIteration.entries()) {
      const packed = packLines(lines, previous);
      expect(Object.keys(packed)).toEqual([previous === null ? 'gz' : 'z']);
      expect(linesOf(packed, previous)).toEqual(lines);
      const alone = gzipSync(lines.join('\n')).length;
      const bytes = Buffer.byteLength(Object.values(packed)[0]!, 'base64');
      // From the third iteration on, the one before is alike: well under half of gzip alone.
      if (i >= 2) expect(bytes, `iteration ${i}: ${bytes} bytes, ${alone} gzipped alone`).toBeLessThan(alone / 2);
      previous = chunkText(lines);
    }
  });

  it('refuses to unpack a chunk without the one before it, or against another one (never wrong lines)', () => {
    const [first, second, third] = byIteration as [string[], string[], string[]];
    const packed = packLines(third, chunkText(second));
    expect(() => linesOf(packed, null)).toThrow('a journal chunk packed against the one before it was read without that one');
    expect(() => linesOf(packed, chunkText(first))).toThrow(/dictionary/i);
  });

  it('packs a record against the record before it, and reads records kept gzipped or whole by an earlier Obra', () => {
    const [first, second, third] = records as [IterationRecord, IterationRecord, IterationRecord];
    const packed = packRecord(third, second);
    expect(packed).toMatchObject({ index: third.index, costUsd: third.costUsd ?? 0 });
    expect(recordOf(packed, JSON.parse(JSON.stringify(second)) as IterationRecord)).toEqual(JSON.parse(JSON.stringify(third)));
    expect(Buffer.byteLength(packed.z!, 'base64')).toBeLessThan(gzipSync(JSON.stringify(third)).length / 4);
    expect(() => recordOf(packed, null)).toThrow(`iteration record ${third.index} is packed against the one before it, which is missing`);
    expect(() => recordOf(packed, first)).toThrow(/dictionary/i);
    expect(recordOf(packRecord(first, null), null)).toEqual(JSON.parse(JSON.stringify(first)));
    expect(recordOf(first, null)).toBe(first);
  });
});
