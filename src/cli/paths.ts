import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The folder of Obra's own package.json (works from src/ under tsx and from dist/ alike). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'obra') return dir;
    dir = dirname(dir);
  }
  throw new Error('cannot find the obra package root');
}

export const fakeClaudePath = () => join(packageRoot(), 'fixtures', 'fake-claude');
