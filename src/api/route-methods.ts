import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

interface PathMethods {
  pattern: RegExp;
  methods: Set<string>;
}

/** A Fastify path (`/training/:task_id/artifacts/*`) as an anchored expression over request paths. */
function compile(url: string): RegExp {
  const source = url
    .split(/(:[A-Za-z0-9_]+|\*)/)
    .map((part) => (part === '*' ? '.*' : part.startsWith(':') ? '[^/]+' : part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${source}$`);
}

/**
 * Which methods each registered path answers, so that a request whose path exists but whose
 * method does not gets FastAPI's 405 with `Allow` rather than Fastify's 404. The router itself
 * only says "no route"; this keeps the other half of the answer.
 */
export class RouteMethods {
  private readonly paths = new Map<string, PathMethods>();

  /** Call before any route is added: Fastify tells onRoute hooks only about later routes. */
  static collect(app: FastifyInstance): RouteMethods {
    const routes = new RouteMethods();
    app.addHook('onRoute', (route) => {
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      routes.add(route.url, methods);
      // A prefixed plugin's '/' is served with and without the trailing slash, but reported once.
      if (route.routePath === '' && (route.prefixTrailingSlash ?? 'both') === 'both') routes.add(`${route.url}/`, methods);
    });
    return routes;
  }

  add(url: string, methods: readonly string[]): void {
    const entry = this.paths.get(url) ?? { pattern: compile(url), methods: new Set<string>() };
    for (const method of methods) entry.methods.add(method.toUpperCase());
    this.paths.set(url, entry);
  }

  /**
   * Whether the router matched a route by giving one of its named parameters an empty value, as
   * it does for `GET /generations/` against `/generations/:generation_id`: that path has no such
   * route, whatever the router says.
   */
  static missesParameter(request: FastifyRequest): boolean {
    return Object.entries(request.params as Record<string, unknown>).some(([name, value]) => name !== '*' && value === '');
  }

  /**
   * FastAPI's answer to a request no route takes: 405 with Allow where the path exists for other
   * methods, else 404 (also when a route of this method passed it on, as the static files do
   * for a file that is not there).
   */
  answerUnrouted(request: FastifyRequest, reply: FastifyReply): FastifyReply {
    const allow = this.allowed(request.url);
    if (allow.length && !allow.includes(request.method)) return reply.code(405).header('allow', allow.join(', ')).send({ detail: 'Method Not Allowed' });
    return reply.code(404).send({ detail: 'Not Found' });
  }

  /** The methods some route serves at this request path (query string ignored), sorted; [] for none. */
  allowed(requestUrl: string): string[] {
    const path = requestUrl.split('?', 1)[0];
    const found = new Set<string>();
    for (const { pattern, methods } of this.paths.values()) {
      if (pattern.test(path)) for (const method of methods) found.add(method);
    }
    return [...found].sort();
  }
}
