/**
 * FNV-1a over the UTF-16 code units of `text`: a small, stable, dependency-free hash. The machines use it where
 * a value must follow from its inputs alone (a replayed journal computes the very same): the seeded jitter of a
 * backoff, the fingerprint of a failure.
 */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}
