/** Domain outcomes the API maps to 404 and 409; no HTTP here. */
export class TaskNotFound extends Error {
  constructor(readonly taskId: string) {
    super('Training task not found');
  }
}

export class TaskConflict extends Error {}

export class NotPermitted extends Error {}
