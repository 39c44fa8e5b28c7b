// The dashboard's build: `web/` in, `dist/web/` out (index.html and content-hashed assets that
// the API process serves with year-long cache headers). Nothing is fetched from a CDN.
import { defineConfig } from 'vite';

export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: '../dist/web',
    emptyOutDir: true,
    assetsDir: 'assets',
    // One small bundle: no modulepreload polyfill (every browser that runs the page supports it).
    modulePreload: { polyfill: false },
  },
});
