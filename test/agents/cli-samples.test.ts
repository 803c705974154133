import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { classify } from '../../src/agents/classify.js';
import { countApiRetries, lastUsageInfo, streamEventsOf } from '../../src/agents/stream-events.js';
import { ROOT } from './fake-env.js';

/**
 * Obra's classification of the real CLI's output under usage limits, API retries and hangs, from the samples the
 * real binary printed (fixtures/claude-cli/limits/, each line prefixed with seconds since spawn).
 */

function sample(name: string): { stdout: string; times: number[] } {
  const lines = readFileSync(join(ROOT, 'fixtures/claude-cli/limits', `${name}.timed.jsonl`), 'utf8').split('\n').filter(Boolean);
  return {
    stdout: lines.map((line) => line.replace(/^\s*[\d.]+ /, '')).join('\n') + '\n',
    times: lines.map((line) => Number(line.trim().split(' ')[0])),
  };
}

const outcomeOf = (name: string, exitCode = 1) => classify({ stdout: sample(name).stdout, stderr: '', exitCode, signal: null, stoppedBy: null, timeoutMs: 900_000, spawnError: null, overflow: false });

describe('the real CLI samples, classified', () => {
  it('a subscriber\'s five-hour usage limit: usageLimit with its reset time (from resetsAt, not the text)', () => {
    expect(outcomeOf('s1-429-oauth-stream')).toEqual({
      kind: 'usageLimit',
      limitType: 'five_hour',
      resetsAt: 1795874697 * 1000,
      blockedBy: null,
      message: "You've hit your session limit · resets 2:04pm (UTC)",
    });
  });

  it('the weekly limit three days away: usageLimit seven_day', () => {
    expect(outcomeOf('s1-429-oauth-weekly-3days')).toMatchObject({ kind: 'usageLimit', limitType: 'seven_day', resetsAt: 1796130970 * 1000, blockedBy: null });
  });

  it("an org's spend limit: usageLimit with nothing to wait for", () => {
    expect(outcomeOf('s1-429-oauth-overage-orgdisabled')).toMatchObject({
      kind: 'usageLimit',
      resetsAt: null,
      blockedBy: "the organisation's spend limit (org_level_disabled_until)",
      message: "You've hit your org's monthly spend limit · ask your admin to raise it at claude.ai/settings/usage",
    });
  });

  it('API-key 429s after the CLI\'s ten retries: an ordinary rate limit, with the retries counted', () => {
    expect(outcomeOf('s1-429-apikey-stream-default')).toMatchObject({ kind: 'rateLimited', status: 429 });
    expect(countApiRetries(sample('s1-429-apikey-stream-default').stdout)).toBe(10);
    expect(outcomeOf('s3-529-oauth-stream')).toMatchObject({ kind: 'rateLimited', status: 529 });
    expect(countApiRetries(sample('s3-529-oauth-stream').stdout)).toBe(10);
  });

  it('two retries, then an answer: an answer (the retries only explain the wait)', () => {
    const s = sample('s2-429x2-ok-apikey-stream');
    expect(outcomeOf('s2-429x2-ok-apikey-stream', 0)).toMatchObject({ kind: 'answer', result: { is_error: false, result: 'Hello from the mock.' } });
    const retries = s.stdout.split('\n').flatMap((line) => streamEventsOf(line)).filter((e) => e.kind === 'apiRetry');
    expect(retries).toEqual([
      { kind: 'apiRetry', attempt: 1, maxRetries: 10, delayMs: 5000, errorStatus: 429, error: 'rate_limit' },
      { kind: 'apiRetry', attempt: 2, maxRetries: 10, delayMs: 5000, errorStatus: 429, error: 'rate_limit' },
    ]);
  });

  it('a successful call reports the usage status too (allowed, with the reset)', () => {
    expect(lastUsageInfo(sample('s4-warn-oauth-stream').stdout)).toEqual({
      status: 'allowed',
      limitType: 'five_hour',
      resetsAt: 1795874697 * 1000,
      utilization: null,
      overageStatus: null,
      overageDisabledReason: null,
    });
  });

  it('a hung API prints system/init and then nothing for minutes: only a watchdog can tell', () => {
    const s = sample('s5-hang-default');
    expect(s.stdout.trim().split('\n').map((l) => JSON.parse(l).subtype)).toEqual(['init']);
    // The same silence, stopped by Obra's watchdog.
    expect(classify({ stdout: s.stdout, stderr: '', exitCode: null, signal: 'SIGTERM', stoppedBy: 'idle', idleMs: 300_000, timeoutMs: 900_000, spawnError: null, overflow: false })).toEqual({
      kind: 'stalled',
      idleMs: 300_000,
      message: 'the agent printed nothing for 300s and was killed (agent.local.idle_timeout)',
    });
  });

  it('with API_TIMEOUT_MS each attempt is cut at 10 s and retried; the end is an error answer "Request timed out"', () => {
    const s = sample('s5-hang-apitimeout10s-retries2');
    expect(s.times[1]! - s.times[0]!).toBeGreaterThan(9.9);
    expect(countApiRetries(s.stdout)).toBe(2);
    expect(outcomeOf('s5-hang-apitimeout10s-retries2')).toMatchObject({ kind: 'answer', result: { is_error: true, api_error_status: null, result: 'Request timed out' } });
  });
});
