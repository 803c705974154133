import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

/**
 * Restate's request identity: the server signs every call it makes to a worker with an Ed25519 private key, and a
 * worker that knows the public key (`publickeyv1_…`) refuses calls not signed with it — anyone who can reach a
 * worker's port could otherwise call its handlers. `obra restate up` makes the key pair once, beside the
 * server's data; workers started on that store find the public key there by themselves.
 */

const BASE58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

/** The key pair at `pemFile` (made when missing): returns the public key as Restate writes it. */
export function ensureIdentityKey(pemFile: string): string {
  if (!existsSync(pemFile)) {
    const { privateKey } = generateKeyPairSync('ed25519');
    writeFileSync(pemFile, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  }
  return publicKeyOf(readFileSync(pemFile, 'utf8'));
}

/** `publickeyv1_` and the raw 32-byte Ed25519 public key in base58, from the private key's PEM. */
function publicKeyOf(privatePem: string): string {
  const jwk = createPublicKey(privatePem).export({ format: 'jwk' }) as { x?: string };
  return `publickeyv1_${base58(Buffer.from(jwk.x ?? '', 'base64url'))}`;
}

function base58(bytes: Buffer): string {
  let value = BigInt(`0x${bytes.toString('hex') || '0'}`);
  let out = '';
  while (value > 0n) {
    out = BASE58[Number(value % 58n)]! + out;
    value /= 58n;
  }
  for (const byte of bytes) {
    if (byte !== 0) break;
    out = `1${out}`;
  }
  return out;
}
