import { closestMatch } from '../util/strings.js';
import { arithmeticTask } from './arithmetic/index.js';
import { randomWalksTask } from './randomwalks/index.js';
import { sentimentTask } from './sentiment/index.js';
import type { Task, TaskName } from './types.js';

export type { SftExample, Task, TaskName } from './types.js';

const TASKS: Readonly<Record<TaskName, Task>> = {
  sentiment: sentimentTask,
  arithmetic: arithmeticTask,
  randomwalks: randomWalksTask,
};

/** The built-in tasks, in a fixed order. */
export const TASK_NAMES: readonly string[] = Object.freeze(Object.keys(TASKS));

export function isTaskName(name: string): name is TaskName {
  return Object.prototype.hasOwnProperty.call(TASKS, name);
}

/** The built-in task called `name`; an unknown name throws an Error listing the valid ones. */
export function getTask(name: string): Task {
  if (isTaskName(name)) return TASKS[name];
  const hint = closestMatch(name, TASK_NAMES);
  throw new Error(`unknown task "${name}"${hint ? ` (did you mean "${hint}"?)` : ''}; valid tasks: ${TASK_NAMES.join(', ')}`);
}
