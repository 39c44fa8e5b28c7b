import path from 'node:path';

/** Where a task's folder is: set once at creation as its training_folder, and removed with it. */
export function taskFolder(dataDir: string, taskId: string): string {
  return path.join(dataDir, 'tasks', taskId);
}

/**
 * The folders and files of a task under KILN_DATA_DIR/tasks/<id>/ (architecture note 5), in
 * the kohya / ai-toolkit layout: what preprocessing writes, what the trainer reads and
 * writes, and what the API serves. Everything that names one of these paths asks here.
 */
export function taskPaths(taskDir: string) {
  const dataset = path.join(taskDir, 'dataset');
  const logs = path.join(taskDir, 'logs');
  const sources = path.join(taskDir, 'sources');
  return {
    root: taskDir,
    sources,
    /** The task's own link to the LoRA it continues from (init_lora_task_id). */
    initLora: path.join(sources, 'init_lora.safetensors'),
    dataset,
    manifest: path.join(dataset, 'manifest.json'),
    checkpoints: path.join(taskDir, 'checkpoints'),
    samples: path.join(taskDir, 'samples'),
    /** The trainer's caches: latents and text embeddings of the dataset. */
    cache: path.join(taskDir, 'cache'),
    output: path.join(taskDir, 'output'),
    logs,
    trainerLog: path.join(logs, 'trainer.log'),
    trainerPid: path.join(logs, 'trainer.pid'),
    events: path.join(logs, 'events.jsonl'),
    spec: path.join(logs, 'trainer-spec.json'),
  };
}

export type TaskPaths = ReturnType<typeof taskPaths>;
