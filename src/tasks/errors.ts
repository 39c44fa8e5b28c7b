/** Domain outcomes the API maps to 404 and 409; no HTTP here. */
export class TaskNotFound extends Error {
  constructor(readonly taskId: string) {
    super('Training task not found');
  }
}

export class TaskConflict extends Error {}

/** A conflict that ends by itself: the job is cancelled, and its worker has yet to let it go. */
export class StillStopping extends TaskConflict {}

export class NotPermitted extends Error {}
