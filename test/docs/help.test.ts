import { describe, expect, it } from 'vitest';
import { obra, ROOT } from '../helpers/cli.js';

/** The command names of a help text's "Commands:" list (commander's own `help` left out). */
function commandsOf(help: string): string[] {
  const list = help.split('\nCommands:\n')[1]?.split('\n\n')[0] ?? '';
  return list
    .split('\n')
    .map((line) => /^ {2}([a-z][a-z-]*)/.exec(line)?.[1])
    .filter((name): name is string => name !== undefined && name !== 'help');
}

async function helpOf(command: string[]): Promise<string> {
  const result = await obra([...command, '--help'], { cwd: ROOT });
  expect(result.exitCode, `obra ${command.join(' ')} --help`).toBe(0);
  return result.stdout;
}

describe('obra <command> --help', () => {
  it('shows examples of that command and the environment variables it reads, for every command', async () => {
    const top = await helpOf([]);
    const commands = commandsOf(top).map((name) => [name]);
    expect(commands.length).toBeGreaterThan(20);
    const helps = new Map<string, string>([['', top]]);
    while (commands.length) {
      const batch = commands.splice(0, 6);
      const texts = await Promise.all(batch.map(helpOf));
      batch.forEach((command, i) => {
        helps.set(command.join(' '), texts[i]!);
        // `obra restate` has commands of its own: `obra restate up`.
        commands.push(...commandsOf(texts[i]!).map((name) => [...command, name]));
      });
    }
    expect(helps.has('restate up')).toBe(true);

    const missing: string[] = [];
    for (const [name, help] of helps) {
      const invocation = name ? `obra ${name}` : 'obra';
      const examples = help.split('\nExamples:\n')[1]?.split('\n\n')[0] ?? '';
      if (!new RegExp(`^ {4}\\$ ${invocation.replace(/ /g, ' ')}( |$)`, 'm').test(examples)) missing.push(`${invocation}: no example of it under "Examples:"`);
      if (!/\nEnvironment:\n {2}OBRA_/.test(help)) missing.push(`${invocation}: no "Environment:" section`);
    }
    expect(missing).toEqual([]);
    // Every flag an example uses is one its command has.
    const unknown: string[] = [];
    for (const [name, help] of helps) {
      const examples = help.split('\nExamples:\n')[1]!.split('\n\n')[0]!;
      for (const line of examples.split('\n').filter((l) => l.startsWith(`    $ obra ${name}`.trimEnd()))) {
        // Only this command's flags: not those inside quoted values, nor of a command after `&&`.
        const own = line.split(' && ')[0]!.replace(/"[^"]*"|'[^']*'/g, '');
        for (const flag of own.match(/ --[a-z-]+/g) ?? []) if (!help.includes(`${flag.trim()} `) && !help.includes(`${flag.trim()}\n`)) unknown.push(`obra ${name}: ${flag.trim()}`);
      }
    }
    expect(unknown).toEqual([]);
    // A command's help is its own: `obra run --help` does not repeat the examples of `obra --help`.
    expect(helps.get('run')).not.toContain('Try it with the bundled fake Claude CLI');
    expect(helps.get('run')).toContain('    $ obra run --task "Add input validation to src/api.ts" --check "npm test" --check "npx tsc --noEmit"\n');
    expect(helps.get('run')).toMatch(/^ {2}OBRA_CLAUDE_BIN +the Claude Code binary/m);
  });
});
