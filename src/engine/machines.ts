import type { AnyActorRef } from 'xstate';
import { createIterationMachine } from '../../machines/iteration.machine.js';
import { createTaskMachine } from '../../machines/task.machine.js';
import { actorsFinding, actorsOf, iterationWork, type AnyActorSystem, type DriveWork, type EffectDeps, type StepEffect } from './effects.js';

export type MachineDeps = EffectDeps & { beforeStep?: (effect: StepEffect) => Promise<boolean> };

/**
 * The task machine with its iteration machine, their actors provided: the statecharts as they run. `beforeStep`
 * is awaited by every actor before it works (the journal writes, or makes durable, what led to it first).
 */
export function buildMachines(deps: MachineDeps) {
  return machinesWith(deps.now, actorsOf(iterationWork(deps), deps.beforeStep));
}

function machinesWith(now: () => number, actors: ReturnType<typeof actorsOf>) {
  const iteration = createIterationMachine(now).provide({ actors });
  return createTaskMachine(now).provide({ actors: { iteration } });
}

export type RunMachine = ReturnType<typeof buildMachines>;

/** Each drive's work, by the actor system of its root actor (gone with it). */
const drives = new WeakMap<AnyActorSystem, DriveWork>();

/** The machines shared by every drive on one clock, made once (building them is a good part of a short run). */
const sharedByClock = new WeakMap<() => number, RunMachine>();

function driveOf(system: AnyActorSystem): DriveWork {
  const drive = drives.get(system);
  if (!drive) throw new Error('an actor of a shared run machine ran outside a drive (bindDrive was not called)');
  return drive;
}

/**
 * The machines for drives on the clock `now`, built once and shared: their actors find the drive they run for
 * by its actor system, which `bindDrive` ties to the drive's own effects before its actor starts.
 */
export function sharedMachines(now: () => number): RunMachine {
  let machine = sharedByClock.get(now);
  if (!machine) {
    machine = machinesWith(now, actorsFinding(driveOf));
    sharedByClock.set(now, machine);
  }
  return machine;
}

/** Ties a drive's root actor (created from `sharedMachines`, not started yet) to the drive's effects. */
export function bindDrive(actor: AnyActorRef, deps: MachineDeps): void {
  drives.set(actor.system, { work: iterationWork(deps), beforeStep: deps.beforeStep });
}
