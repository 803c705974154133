import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OutputTail, runCheck, runChecks } from '../../src/scoring/checks.js';
import { until } from '../agents/fake-env.js';
import { tempDir } from './helpers.js';

describe('acceptance checks: run in the workdir through a shell, with a timeout and only a tail of output', () => {
  it('records exit codes and the output tail, in order, from the task directory', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'answer.txt'), '42\n');
    const results = await runChecks(['cat answer.txt', 'echo "to stderr" >&2; exit 3'], { cwd: dir, timeoutMs: 5000 });
    expect(results.map((r) => [r.command, r.exitCode, r.timedOut, r.outputTail])).toEqual([
      ['cat answer.txt', 0, false, '42'],
      ['echo "to stderr" >&2; exit 3', 3, false, 'to stderr'],
    ]);
    for (const r of results) expect(r.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('a command that does not exist is a failed check that says so (exit 127), not an exception', async () => {
    const result = await runCheck('definitely-not-a-command-xyz --version', { cwd: tempDir(), timeoutMs: 5000 });
    expect(result.exitCode).toBe(127);
    expect(result.outputTail).toMatch(/not found/);
    expect(result.outputTail).toContain('(exit 127: the shell did not find the command — check its spelling and PATH)');
  });

  it('a working directory that does not exist is a failed check with the reason', async () => {
    const result = await runCheck('true', { cwd: '/nonexistent/obra-dir', timeoutMs: 5000 });
    expect(result.exitCode).toBeNull();
    expect(result.outputTail).toMatch(/could not run: ENOENT/);
  });

  it('a check that hangs is killed at its timeout with everything it started (the process group)', async () => {
    const dir = tempDir();
    // The shell starts a grandchild that would outlive a plain kill of the shell, and records its pid.
    const command = 'sleep 30 & echo $! > child.pid; echo started; wait';
    const started = Date.now();
    const result = await runCheck(command, { cwd: dir, timeoutMs: 300 });
    const elapsed = Date.now() - started;
    expect(result.timedOut).toBe(true);
    expect(result.exitCode).toBeNull();
    expect(result.outputTail).toContain('started');
    expect(result.outputTail).toContain('(the check timed out after 0.3s and was killed)');
    expect(elapsed).toBeLessThan(3000);
    const pid = Number(readFileSync(join(dir, 'child.pid'), 'utf8'));
    await until(() => !isAlive(pid), 3000, 'the grandchild to be gone');
  });

  it('a check that ignores SIGTERM gets SIGKILL after the grace period', async () => {
    const started = Date.now();
    const result = await runCheck('trap "" TERM; sleep 30', { cwd: tempDir(), timeoutMs: 200, killGraceMs: 200 });
    expect(result.timedOut).toBe(true);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('a check that floods its output is stopped at the byte limit; only the tail is kept', async () => {
    const started = Date.now();
    const result = await runCheck('yes "flood line"', { cwd: tempDir(), timeoutMs: 10_000, maxOutputBytes: 2_000_000, tailChars: 200 });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(result.exitCode).toBeNull();
    expect(result.timedOut).toBe(false);
    expect(result.outputTail).toMatch(/^…/);
    expect(result.outputTail).toContain('flood line');
    expect(result.outputTail).toContain('(the check printed more than 2000000 bytes and was stopped; task.check_max_output_bytes sets the limit)');
    expect(result.outputTail.length).toBeLessThan(400);
  });

  it('a big but finite output keeps its true last lines', async () => {
    const result = await runCheck('seq 1 200000; echo THE-END; exit 1', { cwd: tempDir(), timeoutMs: 10_000, tailChars: 100 });
    expect(result.exitCode).toBe(1);
    expect(result.outputTail.endsWith('199999\n200000\nTHE-END')).toBe(true);
  });

  it('aborting (the run was stopped) kills the running check and skips the rest', async () => {
    const dir = tempDir();
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 150);
    const started = Date.now();
    const results = await runChecks(['sleep 30', 'touch second-ran'], { cwd: dir, timeoutMs: 60_000, signal: controller.signal });
    expect(Date.now() - started).toBeLessThan(3000);
    expect(results).toHaveLength(1);
    expect(results[0]!.outputTail).toContain('stopped because the run was stopped');
    expect(existsSync(join(dir, 'second-ran'))).toBe(false);
  });

  it('OutputTail keeps the last N characters of a stream of chunks and counts every byte', () => {
    const tail = new OutputTail(10);
    for (let i = 0; i < 1000; i++) tail.push(`line ${i}\n`);
    expect(tail.text()).toBe('…\nline 999\n');
    expect(tail.bytes).toBe(Array.from({ length: 1000 }, (_, i) => `line ${i}\n`).join('').length);
    const short = new OutputTail(100);
    short.push('\x1b[31mred\x1b[39m ok');
    expect(short.text()).toBe('red ok');
  });
});

/** Running, not a zombie: a killed grandchild is reparented to PID 1, which may reap it a while later. */
function isAlive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2] !== 'Z';
  } catch {
    return false;
  }
}
