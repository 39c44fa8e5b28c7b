import { useEffect, useRef, useState } from 'preact/hooks';
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
  // Image path -> blob: URL. The images need the bearer header, so each is fetched once as a blob;
  // a generation's images never change, so a read of the list fetches only those it has not seen.
  const blobs = useRef(new Map<string, string>());

  useEffect(() => () => blobs.current.forEach((url) => URL.revokeObjectURL(url)), []);

  useEffect(() => {
    let live = true;
    const known = blobs.current;
    void get<Generation[]>(`/api/v1/generations/?limit=${SHOWN}`)
      .then(async (page) => {
        const shown = new Set(page.flatMap((g) => g.images));
        await Promise.all(
          [...shown]
            .filter((path) => !known.has(path))
            .map(async (path) => {
              const url = await blobUrl(path);
              // Two reads may race for one new image: the first to land is kept.
              if (known.has(path)) URL.revokeObjectURL(url);
              else known.set(path, url);
            }),
        );
        if (!live) return;
        for (const [path, url] of known) {
          if (shown.has(path)) continue;
          URL.revokeObjectURL(url);
          known.delete(path);
        }
        setListed(page.map((g) => ({ ...g, thumbnails: g.images.map((path) => known.get(path)!) })));
      })
      .catch((err: Error) => setProblem(err.message));
    return () => {
      live = false;
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
