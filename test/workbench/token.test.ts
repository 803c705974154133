import { chmodSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sameToken, storeToken } from '../../src/store/token.js';

describe("the store's token", () => {
  it('is made once, 64 hex digits, mode 0600, put back to 0600 when loosened; a bad file is one line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'obra-token-'));
    const token = storeToken(dir);
    expect(token).toMatch(/^[0-9a-f]{64}$/);
    expect(statSync(join(dir, 'token')).mode & 0o777).toBe(0o600);
    expect(storeToken(dir)).toBe(token);
    chmodSync(join(dir, 'token'), 0o644);
    expect(storeToken(dir)).toBe(token);
    expect(statSync(join(dir, 'token')).mode & 0o777).toBe(0o600);
    expect(sameToken(token, token)).toBe(true);
    expect(sameToken(`${token.slice(0, 63)}${token.endsWith('0') ? '1' : '0'}`, token)).toBe(false);
    expect(sameToken('short', token)).toBe(false);
    writeFileSync(join(dir, 'token'), 'not a token\n');
    expect(() => storeToken(dir)).toThrow(`${join(dir, 'token')} does not hold a token — delete it, and \`obra view\` makes a new one`);
    expect(readFileSync(join(dir, 'token'), 'utf8')).toBe('not a token\n');
    expect(() => storeToken(join(dir, 'missing'))).toThrow(`cannot write the store's token to ${join(dir, 'missing', 'token')} (ENOENT) — \`obra view\` makes it once, in a store it may write to`);
  });
});
