import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { TaskEvent } from '../../../machines/task.machine.js';
import type { ConfigFlags } from '../../config/flags.js';
import type { ControlOutcome } from '../../hosts/files/control-file.js';
import { engineOption } from '../option-parsers.js';

interface ControlFlags extends ConfigFlags {
  config?: string;
  json?: boolean;
  reason?: string;
  wait?: boolean;
}

/**
 * `obra pause <runId>` and `obra cancel <runId>`: reach a run driven by another process through its control
 * file (see src/hosts/files/control-file.ts). Exit 0 when the request took effect (or was accepted), 2 when there
 * is nothing to do (unknown run, already finished), 1 when the driving process did not react.
 */
export function register(program: Command): void {
  const common = (command: Command) =>
    command
      .argument('<runId>', 'the run (see `obra runs`)')
      .option('--config <file>', 'YAML config file (default: ./obra.yaml when present)')
      .option('--db <dir>', 'where runs are stored (default: .obra in the current directory)')
      .option('--reason <text>', 'why (recorded as the run\'s reason)')
      .option('--engine <name>', 'local (a store folder; default) or restate (config engine)', engineOption)
      .option('--set <key=value>', 'override any config key (repeatable), e.g. --set restate.ingress_url=http://127.0.0.1:8080', (value: string, previous: string[]) => [...previous, value], [] as string[])
      .option('--json', 'print { runId, status, message } as JSON');

  common(program.command('pause').description('pause a running run once its current iteration is persisted (`obra resume` continues it)'))
    .option('--wait', 'wait until the run is actually paused')
    .action(async (runId: string, flags: ControlFlags) => {
      if (await onRestate(runId, { type: 'PAUSE', reason: flags.reason ?? 'paused by the user' }, flags)) return;
      const { requestPause } = await import('../../hosts/files/control-file.js');
      report(await requestPause(runId, { storeDir: await storeDirOf(flags), reason: flags.reason ?? 'paused by the user', untilPaused: flags.wait }), flags);
    });

  common(program.command('cancel').description('cancel a run: stop it now (its agent process is killed) and mark it cancelled')).action(
    async (runId: string, flags: ControlFlags) => {
      if (await onRestate(runId, { type: 'CANCEL', reason: flags.reason ?? 'cancelled by the user' }, flags)) return;
      const { requestCancel } = await import('../../hosts/files/cancel.js');
      report(await requestCancel(runId, { storeDir: await storeDirOf(flags), reason: flags.reason ?? 'cancelled by the user' }), flags);
    },
  );
}

/** With engine restate the event goes to the task's object in Restate; returns whether it did. */
async function onRestate(runId: string, event: TaskEvent, flags: ControlFlags): Promise<boolean> {
  const [{ flagLayer }, { loadConfig }] = await Promise.all([import('../../config/flags.js'), import('../../config/load.js')]);
  const config = loadConfig({ file: flags.config ?? null, flags: flagLayer(flags) }).config;
  if (config.engine !== 'restate') return false;
  await (await import('../restate.js')).sendRemote(runId, event, config, flags);
  return true;
}

async function storeDirOf(flags: ControlFlags): Promise<string> {
  const [{ flagLayer }, { loadConfig }] = await Promise.all([import('../../config/flags.js'), import('../../config/load.js')]);
  return resolve(loadConfig({ file: flags.config ?? null, flags: flagLayer(flags) }).config.store.dir);
}

function report(outcome: ControlOutcome, flags: ControlFlags): void {
  if (flags.json) process.stdout.write(`${JSON.stringify(outcome)}\n`);
  else process.stdout.write(`${outcome.message}\n`);
}
