import { createIterationMachine } from '../../machines/iteration.machine.js';
import { createTaskMachine } from '../../machines/task.machine.js';
import { actorsOf, iterationWork, type EffectDeps, type StepEffect } from './effects.js';

/**
 * The task machine with its iteration machine, their actors provided: the statecharts as they run. `beforeStep`
 * is awaited by every actor before it works (the journal writes, or makes durable, what led to it first).
 */
export function buildMachines(deps: EffectDeps & { beforeStep?: (effect: StepEffect) => Promise<boolean> }) {
  const iteration = createIterationMachine(deps.now).provide({ actors: actorsOf(iterationWork(deps), deps.beforeStep) });
  return createTaskMachine(deps.now).provide({ actors: { iteration } });
}

export type RunMachine = ReturnType<typeof buildMachines>;
