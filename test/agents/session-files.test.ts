import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { adoptQwenSession, codexSessionFile, geminiSessionFile, geminiSlug, qwenSessionFile } from '../../src/agents/session-files.js';

const scratch = () => mkdtempSync(join(tmpdir(), 'obra-session-files-'));

describe('where each CLI keeps a session, for carrying it between machines', () => {
  it('Qwen Code: the folder dashed, the id as the file name', () => {
    expect(qwenSessionFile('abc', '/work/My Repo.v2', { HOME: '/h' })).toBe('/h/.qwen/projects/-work-My-Repo-v2/chats/abc.jsonl');
  });

  it('Codex: the rollout found by its id, else under the day its UUIDv7 thread id began', () => {
    // 0x01a2524a0f37 ms after the epoch is 2026-12-07T20:55:14.999Z.
    const id = '01a2524a-0f37-7ea0-99da-9ff40865c80d';
    expect(codexSessionFile(id, '/c', null)).toBe(`/c/sessions/2026/12/07/rollout-2026-12-07T20-55-14-${id}.jsonl`);
    expect(codexSessionFile(id, '/c', '/c/sessions/2026/01/01/rollout-x-' + id + '.jsonl')).toBe('/c/sessions/2026/01/01/rollout-x-' + id + '.jsonl');
    // Not a UUIDv7 (Obra's own session id, a v4, before Codex named the thread): under today, whatever its first
    // bits would say read as a time (these: the year 10889, which has no YYYY).
    const today = new Date().toISOString().slice(0, 10).split('-').join('/');
    expect(codexSessionFile('ffff0000-0000-4000-8000-000000000000', '/c', null)).toMatch(new RegExp(`^/c/sessions/${today}/rollout-\\d{4}-\\d\\d-\\d\\dT\\d\\d-\\d\\d-\\d\\d-ffff0000-0000-4000-8000-000000000000\\.jsonl$`));
  });

  it('Gemini CLI: the slug the registry or a marker gives the folder, else its name slugged past folders that own it', () => {
    expect(geminiSlug('My_Repo.V2')).toBe('my-repo-v2');
    expect(geminiSlug('...')).toBe('project');
    const home = scratch();
    const tmp = join(home, '.gemini', 'tmp');
    const now = new Date('2026-12-07T21:05:00Z');
    // Nothing known: the base name slugged.
    expect(geminiSessionFile('6f1c0000-aaaa', '/w/Run_1', { HOME: home }, now)).toBe(join(tmp, 'run-1', 'chats', 'session-2026-12-07T21-05-6f1c0000.jsonl'));
    // That slug owned by another folder: the next one.
    mkdirSync(join(tmp, 'run-1'), { recursive: true });
    writeFileSync(join(tmp, 'run-1', '.project_root'), '/elsewhere/run-1');
    expect(geminiSessionFile('6f1c0000-aaaa', '/w/Run_1', { HOME: home }, now)).toBe(join(tmp, 'run-1-1', 'chats', 'session-2026-12-07T21-05-6f1c0000.jsonl'));
    // A marker that names the folder wins; the registry wins over both.
    mkdirSync(join(tmp, 'mine'));
    writeFileSync(join(tmp, 'mine', '.project_root'), '/w/Run_1');
    expect(geminiSessionFile('6f1c0000-aaaa', '/w/Run_1', { HOME: home }, now)).toBe(join(tmp, 'mine', 'chats', 'session-2026-12-07T21-05-6f1c0000.jsonl'));
    writeFileSync(join(home, '.gemini', 'projects.json'), JSON.stringify({ projects: { '/w/Run_1': 'listed' } }));
    // A file already there is found by the id's first 8 hex, whatever its time.
    mkdirSync(join(tmp, 'listed', 'chats'), { recursive: true });
    writeFileSync(join(tmp, 'listed', 'chats', 'session-2026-01-01T00-00-6f1c0000.jsonl'), '');
    expect(geminiSessionFile('6f1c0000-aaaa', '/w/Run_1', { HOME: home }, now)).toBe(join(tmp, 'listed', 'chats', 'session-2026-01-01T00-00-6f1c0000.jsonl'));
  });

  it('a Qwen Code session moved to another folder names that folder in its first record, and nothing else changes', () => {
    const file = join(scratch(), 's.jsonl');
    const rest = '{"cwd":"/a","type":"assistant"}\n';
    writeFileSync(file, `{"cwd":"/a","type":"user","uuid":"u1"}\n${rest}`);
    adoptQwenSession(file, '/b/work');
    expect(readFileSync(file, 'utf8')).toBe(`{"cwd":"/b/work","type":"user","uuid":"u1"}\n${rest}`);
  });
});
