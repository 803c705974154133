import { randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../core/errors.js';

/**
 * The store's secret token: what a request that changes anything through `obra view`'s API must carry
 * (`Authorization: Bearer <token>`). Made once, on first use, 256 random bits in `<store>/token`, readable by its
 * owner only (mode 0600) — whoever can read the store can drive its tasks anyway.
 */

export const TOKEN_FILE = 'token';

export function storeToken(storeDir: string): string {
  const path = join(storeDir, TOKEN_FILE);
  try {
    // `wx`: two processes that start at once do not both write one; the loser reads the winner's.
    writeFileSync(path, `${randomBytes(32).toString('hex')}\n`, { flag: 'wx', mode: 0o600 });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST') throw new UserError(`cannot write the store's token to ${path} (${code ?? String(error)}) — \`obra view\` makes it once, in a store it may write to`);
    // Copied or restored with looser rights: no one else may read it from now on.
    if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
  }
  const token = readFileSync(path, 'utf8').trim();
  if (!/^[0-9a-f]{64}$/.test(token)) throw new UserError(`${path} does not hold a token — delete it, and \`obra view\` makes a new one`);
  return token;
}

/** Compares in constant time: the time a wrong token takes says nothing of the right one. */
export function sameToken(given: string, token: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}
