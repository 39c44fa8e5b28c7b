import fs from 'node:fs';
import path from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import fastifyStatic from '@fastify/static';
import { REPO_ROOT } from '../../config.js';

/** Where `make build` puts the dashboard (web/ built by Vite). */
export const DASHBOARD_DIR = path.join(REPO_ROOT, 'dist', 'web');

/** The dashboard's pages: each is the same shell, which routes in the browser. */
const PAGES = ['/', '/tasks/:task_id', '/new', '/generate', '/usage'];

/**
 * The shell holds no data (everything comes from the API with the page's token), so it and its
 * assets need no bearer header. The policy keeps the page to its own origin: scripts and styles
 * from the assets only, images from signed links or object URLs, calls to this API only.
 */
const SHELL_HEADERS = {
  'cache-control': 'no-cache',
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
};

/**
 * The dashboard at `/`, `/tasks/{id}`, `/new` and `/generate`, with its content-hashed assets
 * under `/assets/` cached for a year. Not built (a checkout that never ran `make build`): the
 * pages say how to build it, and the API is unaffected.
 */
export const dashboardRoutes: FastifyPluginAsync<{ dir?: string }> = async (app, opts) => {
  const dir = opts.dir ?? DASHBOARD_DIR;
  const shellFile = path.join(dir, 'index.html');
  await app.register(fastifyStatic, {
    root: path.join(dir, 'assets'),
    prefix: '/assets/',
    // Vite names each asset by its content: a changed file is a new name.
    immutable: true,
    maxAge: '365d',
    index: false,
    wildcard: true,
    allowedPath: (pathName) => !pathName.includes('..'),
  });
  for (const url of PAGES) {
    app.get(url, { schema: { hide: true } }, async (_request, reply) => {
      let shell: Buffer;
      try {
        shell = await fs.promises.readFile(shellFile);
      } catch {
        return reply
          .code(503)
          .type('text/plain; charset=utf-8')
          .send('The dashboard is not built: run `make build` (or `make run`). The API is at /api/v1, its documentation at /docs.\n');
      }
      return reply.headers(SHELL_HEADERS).type('text/html; charset=utf-8').send(shell);
    });
  }
};
