/**
 * `import()` of a module outside ebb's own code: a project's plugin, tsx, Snowflake's driver,
 * nodemailer. In the built script, which bin/ebb.js compiles from V8's code cache, `import()`
 * itself fails on Node 20 (a script that comes from the cache loses its dynamic-import hook), so
 * bin/ebb.js passes an import of its own as `__ebbImport`; from the sources (tests, tsx) it is
 * undefined and this is a plain `import()`.
 */
declare const __ebbImport: ((specifier: string) => Promise<unknown>) | undefined;

export function importModule<T>(specifier: string): Promise<T> {
  return (typeof __ebbImport === 'function' ? __ebbImport(specifier) : import(specifier)) as Promise<T>;
}
