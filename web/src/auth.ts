/**
 * The bearer token lives in this tab's sessionStorage. A link with `#token=<JWT>` signs in: the
 * fragment never reaches a server, and it is taken out of the address bar (and so out of the
 * history and of anything copied from it) as soon as it is read.
 */
const KEY = 'kiln.token';

export function adoptTokenFromFragment(): void {
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!match) return;
  sessionStorage.setItem(KEY, decodeURIComponent(match[1]));
  history.replaceState(history.state, '', location.pathname + location.search);
}

export function token(): string | null {
  return sessionStorage.getItem(KEY);
}

export function setToken(value: string): void {
  sessionStorage.setItem(KEY, value.trim());
}

export function clearToken(): void {
  sessionStorage.removeItem(KEY);
  window.dispatchEvent(new Event('kiln:signed-out'));
}

/**
 * What the token says about its holder, for the page's own choices (show the priority control,
 * name the tenant). The server checks the signature and the scope on every request; this only
 * decodes, so it decides nothing that matters.
 */
export function claims(): { tenant: string | null; admin: boolean } {
  try {
    const payload = JSON.parse(atob((token() ?? '').split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))) as { tenant_id?: string; scope?: string };
    return { tenant: payload.tenant_id ?? null, admin: (payload.scope ?? '').split(' ').includes('training:admin') };
  } catch {
    return { tenant: null, admin: false };
  }
}
