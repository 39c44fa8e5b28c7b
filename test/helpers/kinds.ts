import { generateKind, preprocessKind, trainKind } from '../../src/engine/kinds.js';
import type { JobHandler } from '../../src/engine/job-kind.js';
import type { GenerationRow, TrainingTaskRow } from '../../src/store/db.js';
import type { GenerationStore } from '../../src/store/generations.js';
import type { TaskStore } from '../../src/store/tasks.js';

/** For tests that claim or rescue without running anything: a handler that must not be called. */
const notRun = async (): Promise<never> => {
  throw new Error('this test claims jobs; it does not run them');
};

/** The engine's job kinds over a harness's stores, with the handlers a test gives. */
export function kindsOf(
  tasks: TaskStore,
  generations: GenerationStore,
  handlers: { preprocess?: JobHandler<TrainingTaskRow>; train?: JobHandler<TrainingTaskRow>; generate?: JobHandler<GenerationRow> } = {},
) {
  return {
    preprocess: preprocessKind(tasks, handlers.preprocess ?? notRun),
    generate: generateKind(generations, handlers.generate ?? notRun),
    train: trainKind(tasks, handlers.train ?? notRun),
  };
}
