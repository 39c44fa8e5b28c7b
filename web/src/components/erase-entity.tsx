import { useState } from 'preact/hooks';
import type { EntityErasure } from '../../../src/domain/schemas/entities';
import { api } from '../api';
import { plural } from '../../../src/util/words';

const AGAIN_MS = 2000;
const GIVE_UP_MS = 120_000;

/**
 * Erases the entity the task list is filtered by, for a deletion request: asked once more, then
 * DELETE /api/v1/entities/{id} again every few seconds while cancelled work is still stopping.
 */
export function EraseEntity({ entityId }: { entityId: string }) {
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<string | null>(null);

  const erase = async () => {
    setBusy(true);
    setOutcome('Erasing…');
    const total = { tasks: 0, generations: 0, uploads: 0 };
    const giveUp = Date.now() + GIVE_UP_MS;
    try {
      for (;;) {
        const answer = await api<EntityErasure>('DELETE', `/api/v1/entities/${entityId}`);
        total.tasks += answer.deleted_tasks.length;
        total.generations += answer.deleted_generations.length;
        total.uploads += answer.deleted_uploads;
        const erased = `Erased ${plural(total.tasks, 'task')}, ${plural(total.generations, 'generation')} and ${plural(total.uploads, 'upload')}`;
        if (answer.complete) return setOutcome(`${erased}: nothing of ${entityId} is left.`);
        if (answer.blocked.length || Date.now() > giveUp) {
          const left = [...answer.blocked.map((b) => b.reason), ...answer.stopping.map((id) => `${id} is still stopping`)];
          return setOutcome(`${erased}; not yet erased: ${left.join('; ')}`);
        }
        setOutcome(`${erased}; waiting for ${plural(answer.stopping.length, 'job')} to stop…`);
        await new Promise((r) => setTimeout(r, AGAIN_MS));
      }
    } catch (err) {
      setOutcome((err as Error).message);
    } finally {
      setBusy(false);
      setConfirming(false);
    }
  };

  return (
    <div class="erase-entity">
      {confirming ? (
        <>
          <button type="button" id="erase-confirm" class="danger" disabled={busy} onClick={() => void erase()}>
            Erase its tasks, uploads and generations
          </button>
          <button type="button" id="erase-keep" disabled={busy} onClick={() => setConfirming(false)}>
            Keep
          </button>
        </>
      ) : (
        <button type="button" id="erase-entity" class="quiet-danger" disabled={busy} onClick={() => setConfirming(true)}>
          Erase this entity…
        </button>
      )}
      {outcome && (
        <p id="erase-outcome" role="status">
          {outcome}
        </p>
      )}
    </div>
  );
}
