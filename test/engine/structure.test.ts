import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The shape of the code, checked: no import cycles among Obra's modules (static or `await import`), and the
 * statecharts in machines/ load nothing at run time from src/ (they import its types only), so they paste into
 * Stately Studio and any host can drive them.
 */

const ROOT = resolve(import.meta.dirname, '../..');

function* files(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else if (entry.name.endsWith('.ts')) yield path;
  }
}

/** The modules a file loads at run time: `import ... from`, `export ... from`, `import(...)`, minus type-only ones. */
function runtimeImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found: string[] = [];
  for (const match of text.matchAll(/^\s*(import|export)\s+(type\s+)?[^;]*?\sfrom\s+'([^']+)'/gm)) if (!match[2]) found.push(match[3]!);
  for (const match of text.matchAll(/^\s*import\s+'([^']+)'/gm)) found.push(match[1]!);
  for (const match of text.matchAll(/import\(\s*'([^']+)'\s*\)/g)) found.push(match[1]!);
  return found.filter((spec) => spec.startsWith('.')).map((spec) => resolve(dirname(file), spec).replace(/\.js$/, '.ts'));
}

const modules = [...files(join(ROOT, 'src')), ...files(join(ROOT, 'machines'))];
const graph = new Map(modules.map((file) => [file, runtimeImports(file)]));
const name = (file: string) => relative(ROOT, file);

/** Every cycle a depth-first walk of the graph meets, as `a → b → a`. */
function cyclesOf(graph: Map<string, string[]>): string[] {
  const cycles: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (file: string, path: string[]) => {
    if (state.get(file) === 'done') return;
    if (state.get(file) === 'visiting') {
      cycles.push([...path.slice(path.indexOf(file)), file].map(name).join(' → '));
      return;
    }
    state.set(file, 'visiting');
    for (const next of graph.get(file) ?? []) visit(next, [...path, file]);
    state.set(file, 'done');
  };
  for (const file of graph.keys()) visit(file, []);
  return cycles;
}

describe('the module graph', () => {
  it('has no import cycle', () => {
    expect(cyclesOf(graph)).toEqual([]);
  });

  it('the cycle check finds one where there is one (as the runner and the run control once had)', () => {
    const [runner, control, store] = ['src/engine/runner.ts', 'src/control/run-control.ts', 'src/store/run-store.ts'].map((f) => join(ROOT, f));
    expect(cyclesOf(new Map([[runner!, [control!, store!]], [control!, [runner!]], [store!, []]]))).toEqual(['src/engine/runner.ts → src/control/run-control.ts → src/engine/runner.ts']);
  });

  it('every relative import names a module that exists', () => {
    const missing = [...graph].flatMap(([file, imports]) => imports.filter((target) => !graph.has(target)).map((target) => `${name(file)} → ${name(target)}`));
    expect(missing).toEqual([]);
  });

  it('machines/ loads nothing from src/ at run time (types only)', () => {
    const leaks = [...graph].filter(([file]) => name(file).startsWith('machines/')).flatMap(([file, imports]) => imports.filter((t) => name(t).startsWith('src/')).map((t) => `${name(file)} → ${name(t)}`));
    expect(leaks).toEqual([]);
  });

  it('the engine core (src/engine) loads no host: files, store, or CLI', () => {
    const leaks = [...graph]
      .filter(([file]) => name(file).startsWith('src/engine/'))
      .flatMap(([file, imports]) => imports.filter((t) => /^src\/(hosts|store|cli)\//.test(name(t))).map((t) => `${name(file)} → ${name(t)}`));
    expect(leaks).toEqual([]);
  });
});

describe('what the sources cite', () => {
  /** Every file under the folders that ship or test the code (not node_modules, dist or .cache). */
  function* allFiles(dir: string): Generator<string> {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) yield* allFiles(path);
      else if (entry.isFile()) yield path;
    }
  }

  it('cites samples the repository carries (fixtures/claude-cli/), never a folder outside it', () => {
    // Spelled in two parts, so that this file does not cite it itself.
    const outside = new RegExp(['sha', 'red/(claude-cli|agent-clis)|\\.\\./sha', 'red\\b'].join(''));
    const cited: string[] = [];
    const missing: string[] = [];
    for (const folder of ['src', 'machines', 'fixtures', 'scripts', 'test', 'bench']) {
      for (const file of allFiles(join(ROOT, folder))) {
        const text = readFileSync(file, 'utf8');
        text.split('\n').forEach((line, i) => {
          if (outside.test(line)) cited.push(`${name(file)}:${i + 1}`);
        });
        for (const match of text.matchAll(/fixtures\/claude-cli\/[\w./-]*[\w/]/g)) {
          if (!existsSync(join(ROOT, match[0]))) missing.push(`${name(file)}: ${match[0]}`);
        }
      }
    }
    expect(cited).toEqual([]);
    expect(missing).toEqual([]);
  });
});
