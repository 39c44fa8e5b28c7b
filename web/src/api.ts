/**
 * The dashboard's only way to the server: the public API under /api/v1 with the bearer token.
 * The HTML shell holds no data, so what a page shows is what the API lets this token see.
 */
import { clearToken, token } from './auth';

export interface FieldIssue {
  loc: (string | number)[];
  msg: string;
  type: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** A 422's issues, each naming where it is (`['body', 'steps']`). */
    readonly issues: FieldIssue[] = [],
  ) {
    super(message);
  }
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  return { authorization: `Bearer ${token() ?? ''}`, ...extra };
}

async function failure(res: Response): Promise<ApiError> {
  let detail: unknown = res.statusText;
  try {
    detail = ((await res.json()) as { detail?: unknown }).detail ?? detail;
  } catch {
    // Not JSON (a proxy's page): the status says enough.
  }
  // A token that expired or was revoked: back to the sign-in form rather than a page of errors.
  if (res.status === 401) clearToken();
  if (Array.isArray(detail)) {
    const issues = detail as FieldIssue[];
    return new ApiError(res.status, issues.map((i) => `${i.loc.slice(1).join('.')}: ${i.msg}`).join('; '), issues);
  }
  return new ApiError(res.status, typeof detail === 'string' ? detail : JSON.stringify(detail));
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, {
    method,
    headers: headers(body === undefined ? {} : { 'content-type': 'application/json' }),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw await failure(res);
  // A deletion's 204 has no body.
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

export const get = <T>(path: string) => api<T>('GET', path);

/** A file behind the bearer header (a generated image) as an object URL for `<img>` and downloads. */
export async function blobUrl(path: string): Promise<string> {
  const res = await fetch(path, { headers: headers() });
  if (!res.ok) throw await failure(res);
  return URL.createObjectURL(await res.blob());
}

/**
 * One file to /api/v1/uploads/, with its progress: XMLHttpRequest, because fetch reports no
 * upload progress. Resolves to the reference to put in source_images.
 */
export function upload(file: File, onProgress: (fraction: number) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/v1/uploads/');
    for (const [k, v] of Object.entries(headers())) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onerror = () => reject(new ApiError(0, `${file.name}: the upload was interrupted`));
    xhr.onload = () => {
      let body: { uploads?: { reference: string }[]; detail?: unknown } = {};
      try {
        body = JSON.parse(xhr.responseText) as typeof body;
      } catch {
        // Reported below by status.
      }
      if (xhr.status === 201 && body.uploads?.[0]) {
        onProgress(1);
        resolve(body.uploads[0].reference);
      } else {
        reject(new ApiError(xhr.status, `${file.name}: ${typeof body.detail === 'string' ? body.detail : `upload failed (${xhr.status})`}`));
      }
    };
    const form = new FormData();
    form.append('files', file, file.name);
    xhr.send(form);
  });
}

export interface StreamEvent {
  event: string;
  data: unknown;
  id?: string;
}

/**
 * A task's Server-Sent Events, read with fetch: an EventSource cannot send the bearer header.
 * Calls `onEvent` per event until the server ends the stream (after `end`) or `signal` aborts;
 * a dropped connection is resumed with Last-Event-ID after a second.
 */
export async function followEvents(path: string, onEvent: (e: StreamEvent) => void, signal: AbortSignal): Promise<void> {
  let lastId: string | undefined;
  while (!signal.aborted) {
    try {
      const res = await fetch(path, { headers: headers(lastId ? { 'last-event-id': lastId } : {}), signal });
      if (!res.ok || !res.body) throw await failure(res);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      let ended = false;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut: number;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const event: StreamEvent = { event: 'message', data: null };
          const data: string[] = [];
          for (const line of block.split('\n')) {
            const colon = line.indexOf(':');
            if (colon <= 0) continue; // a comment (keep-alive) or a blank field
            const field = line.slice(0, colon);
            const text = line.slice(colon + 1).replace(/^ /, '');
            if (field === 'event') event.event = text;
            else if (field === 'data') data.push(text);
            else if (field === 'id') event.id = lastId = text;
          }
          if (data.length === 0) continue;
          event.data = JSON.parse(data.join('\n'));
          onEvent(event);
          if (event.event === 'end') ended = true;
        }
      }
      if (ended) return;
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof ApiError && err.status >= 400 && err.status < 500) throw err;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}
