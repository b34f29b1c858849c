import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', 'coverage/**', 'dist/**', '**/*.cjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true }],
    },
  },
  { files: ['bin/**', 'scripts/**/*.js'], languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } } },
  {
    // The Sync Manager's page runs in the browser.
    files: ['ui/**/*.js'],
    languageOptions: {
      globals: Object.fromEntries(
        ['window', 'document', 'location', 'fetch', 'getComputedStyle', 'URL', 'URLSearchParams', 'FormData', 'Event', 'sessionStorage', 'Intl', 'ResizeObserver', 'setInterval', 'clearInterval', 'addEventListener', 'removeEventListener', 'dispatchEvent'].map((g) => [g, 'readonly']),
      ),
    },
  },
);
