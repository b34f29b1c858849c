/** Where this install of ebb keeps its own files: package.json, sql/, templates/, ui/. */

/**
 * The package's folder. This module sits one level below it both as source (engine/paths.ts) and
 * compiled (dist/*.js: the build writes one flat folder), so the same relative URL serves both.
 */
export const packageRoot = new URL('../', import.meta.url);
