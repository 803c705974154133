export { iterationMachine, createIterationMachine } from './iteration.machine.js';
export type { IterationContext, IterationEvent, IterationInput, IterationMachine, SessionStrategy } from './iteration.machine.js';
export { taskMachine, createTaskMachine } from './task.machine.js';
export type { TaskContext, TaskEvent, TaskInput, TaskOutput, Budgets, TaskMachine } from './task.machine.js';
export { FINAL_STATUSES, type TaskStatus } from './statuses.js';
export { backoffDelayMs } from './backoff.js';
