import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

/**
 * The CLI tests run the built `dist/` (a real `node` process, as users run it). So that `npx vitest run` after an
 * edit tests the code as it is, not last build's: any source newer than its compiled file (or not compiled yet)
 * rebuilds first. `npm test` builds before vitest, so there this finds nothing to do.
 */
const ROOT = resolve(import.meta.dirname, '..');

function* sources(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* sources(path);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) yield path;
  }
}

function stale(): string | null {
  for (const folder of ['src', 'machines']) {
    for (const source of sources(join(ROOT, folder))) {
      const built = join(ROOT, 'dist', relative(ROOT, source)).replace(/\.ts$/, '.js');
      if (!existsSync(built) || statSync(built).mtimeMs < statSync(source).mtimeMs) return relative(ROOT, source);
    }
  }
  return null;
}

export default function setup(): void {
  const changed = stale();
  if (!changed) return;
  process.stderr.write(`dist/ is older than ${changed}: building it first (tsc -p tsconfig.json)\n`);
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'inherit' });
}
