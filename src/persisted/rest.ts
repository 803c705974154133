import { iterationMachine } from '../../machines/iteration.machine.js';
import { taskMachine } from '../../machines/task.machine.js';
import { runningIterationOf, taskStateOf } from './snapshot.js';

/**
 * Whether the run is at rest in this snapshot: the task (or its running iteration) is in a state tagged
 * `resting` — it waits for a timer or a person rather than computes. Read from the machines' own definitions.
 */
export function isAtRest(snapshot: unknown): boolean {
  const task = taskStateOf(snapshot);
  if (task && taskMachine.root.states[task]?.tags.includes('resting')) return true;
  const iteration = runningIterationOf(snapshot);
  return Boolean(iteration && iteration.status === 'active' && iterationMachine.root.states[iteration.state]?.tags.includes('resting'));
}

/** Whether the run waits for a person's answer in this snapshot (its task state is tagged `escalated`). */
export function waitsForAnswer(snapshot: unknown): boolean {
  const task = taskStateOf(snapshot);
  return Boolean(task && taskMachine.root.states[task]?.tags.includes('escalated'));
}
