import { useEffect, useState } from 'preact/hooks';

/** The dashboard's pages; anything else under / is the list. */
export type Route = { page: 'list' } | { page: 'task'; id: string } | { page: 'new' } | { page: 'generate' } | { page: 'usage' };

export function routeOf(pathname: string): Route {
  const task = /^\/tasks\/([0-9a-f-]{36})\/?$/.exec(pathname);
  if (task) return { page: 'task', id: task[1] };
  if (pathname === '/new') return { page: 'new' };
  if (pathname === '/generate') return { page: 'generate' };
  if (pathname === '/usage') return { page: 'usage' };
  return { page: 'list' };
}

export function navigate(path: string): void {
  history.pushState(null, '', path);
  window.dispatchEvent(new PopStateEvent('popstate'));
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => routeOf(location.pathname));
  useEffect(() => {
    const update = () => setRoute(routeOf(location.pathname));
    window.addEventListener('popstate', update);
    return () => window.removeEventListener('popstate', update);
  }, []);
  return route;
}

/** Same-origin links move within the page instead of loading it again; modified clicks are the browser's. */
export function onLinkClick(e: MouseEvent): void {
  const a = (e.target as Element).closest('a');
  if (!a || a.target || a.hasAttribute('download') || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const url = new URL(a.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/') || url.pathname.startsWith('/docs')) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
}
