export { iterationMachine, createIterationMachine } from './iteration.machine.js';
export type { IterationContext, IterationEvent, IterationInput, IterationMachine, SessionStrategy } from './iteration.machine.js';
export { taskMachine, createTaskMachine } from './task.machine.js';
export type { TaskContext, TaskEvent, TaskInput, TaskOutput, TaskStatus, Budgets, TaskMachine } from './task.machine.js';
export { backoffDelayMs } from './backoff.js';
