// ESLint (flat config) for the TypeScript sources, tests and benchmarks: `npm run lint`.
// Type-aware rules read the program of tsconfig.check.json, the same one `tsc` checks.
import eslint from '@eslint/js';
import prettier from 'eslint-config-prettier';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['dist/', 'node_modules/', '.venv/', 'trainer/', 'data/', 'kiln-output/', 'examples/demo/photos/'] },
  eslint.configs.recommended,
  // recommendedTypeChecked, not strictTypeChecked: strict adds style opinions this code does not
  // share (numbers in template literals, `!` after an assert in tests) and no-unnecessary-condition,
  // which misjudges index reads because tsconfig leaves noUncheckedIndexedAccess off.
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { project: './tsconfig.check.json', tsconfigRootDir: import.meta.dirname } },
    rules: {
      // node:test's describe() and test() return promises that the runner itself awaits.
      '@typescript-eslint/no-floating-promises': ['error', { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'suite', 'it', 'test'] }] }],
      // Async functions here implement a promise-returning contract without always awaiting: Fastify
      // async plugins (which must be async, or Fastify waits for a done callback), Command.run,
      // resolver and stage stubs in tests. Rewriting them as Promise.resolve() would turn a throw
      // into a synchronous one instead of a rejection.
      '@typescript-eslint/require-await': 'off',
      // A leading underscore marks a binding kept for its position: a callback's parameter, a key
      // destructured only to leave it out of `...rest`.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
    },
  },
  {
    // The dashboard is a browser program with its own tsconfig (DOM, JSX for Preact).
    files: ['web/**/*.ts', 'web/**/*.tsx'],
    languageOptions: { parserOptions: { project: './web/tsconfig.json', tsconfigRootDir: import.meta.dirname } },
  },
  {
    // Plain JavaScript (this file, loader hooks for tests) is outside the TypeScript program.
    files: ['**/*.js', '**/*.mjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
  // Last, so that no rule left on argues with Prettier's formatting.
  prettier,
);
