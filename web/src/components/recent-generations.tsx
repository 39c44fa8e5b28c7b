import { useEffect, useState } from 'preact/hooks';
import type { Generation } from '../../../src/domain/schemas/generations';
import { blobUrl, get } from '../api';
import { when } from '../format';
import { StatusBadge } from './status';

const SHOWN = 10;

type Listed = Generation & { thumbnails: string[] };

/**
 * The caller's newest generations with their images, so that what was made earlier (or in
 * another tab) is one glance away. Read again whenever `version` changes: after a generation ends.
 */
export function RecentGenerations({ version }: { version: number }) {
  const [listed, setListed] = useState<Listed[] | null>(null);
  const [problem, setProblem] = useState<string | null>(null);

  useEffect(() => {
    let urls: string[] = [];
    let live = true;
    void get<Generation[]>(`/api/v1/generations/?limit=${SHOWN}`)
      .then((page) =>
        // The images need the bearer header, so each is fetched as a blob: URL, revoked when the list is read again.
        Promise.all(page.map(async (g) => ({ ...g, thumbnails: await Promise.all(g.images.map((u) => blobUrl(u))) }))),
      )
      .then((page) => {
        urls = page.flatMap((g) => g.thumbnails);
        if (live) setListed(page);
        else urls.forEach((u) => URL.revokeObjectURL(u));
      })
      .catch((err: Error) => setProblem(err.message));
    return () => {
      live = false;
      urls.forEach((u) => URL.revokeObjectURL(u));
    };
  }, [version]);

  return (
    <section id="recent-generations" aria-labelledby="recent-heading">
      <h2 id="recent-heading">Recent generations</h2>
      {problem && (
        <p class="error" role="alert">
          {problem}
        </p>
      )}
      {listed === null && !problem && <p class="muted">Loading…</p>}
      {listed?.length === 0 && <p class="muted">None yet.</p>}
      <ul class="recent">
        {listed?.map((g) => (
          <li key={g.id} data-generation-id={g.id}>
            <p>
              <StatusBadge status={g.status} /> {g.prompt} <span class="muted small">{when(g.created_at)}</span>
            </p>
            {g.error_message && <p class="muted small">{g.error_message}</p>}
            <div class="gallery">
              {g.thumbnails.map((url, i) => (
                <a key={url} href={url} download={g.images[i].split('/').pop()}>
                  <img class="thumb" src={url} alt={`Generated: ${g.prompt}`} />
                </a>
              ))}
            </div>
          </li>
        ))}
      </ul>
    </section>
  );
}
