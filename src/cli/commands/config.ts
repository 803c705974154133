import type { Command } from 'commander';
import type { ConfigFlags } from '../../config/flags.js';

/** `obra config`: the effective config (file, then OBRA_* env, then flags) and where each value came from. */
export function register(program: Command): void {
  program
    .command('config')
    .description('print the effective config and where each value came from')
    .option('--config <file>', 'YAML config file (default: ./obra.yaml when present)')
    .option('--db <dir>', 'as for run: overrides store.dir')
    .option('--agent-bin <path>', 'as for run: overrides agent.local.command')
    .option('--set <key=value>', 'override any config key (repeatable), e.g. --set decision.stuck_after=4', (v: string, p: string[]) => [...p, v], [] as string[])
    .option('--json', 'print { config, sources, file } as JSON')
    .action(async (flags: ConfigFlags & { config?: string; json?: boolean }) => {
      const [{ formatEffectiveConfig }, { flagLayer }, { loadConfig }] = await Promise.all([
        import('../../config/describe.js'),
        import('../../config/flags.js'),
        import('../../config/load.js'),
      ]);
      const loaded = loadConfig({ file: flags.config ?? null, flags: flagLayer(flags) });
      if (flags.json) process.stdout.write(`${JSON.stringify({ config: loaded.config, sources: loaded.sources, file: loaded.file }, null, 2)}\n`);
      else process.stdout.write(formatEffectiveConfig(loaded));
    });
}
