/** Keeps secrets out of logs, history, error messages and the catalog. */

/** Secret values, with the environment variable each came from (when it came from one). */
const secrets = new Map<string, string | undefined>();

/** Registers a secret value; short values are too common to mask. */
export function addSecret(value: string, variable?: string): void {
  if (value.length >= 6) secrets.set(value, variable);
}

/** Replaces every registered secret in a text with `***`. */
export function redact(text: string): string {
  let out = text;
  for (const s of secrets.keys()) out = out.split(s).join('***');
  return out;
}

/**
 * Puts `{{ env_var('NAME') }}` back where a secret was resolved, so that a definition stored in
 * the catalog holds no secret; loading it resolves the variables again.
 */
export function unresolve(text: string): string {
  let out = text;
  for (const [value, variable] of secrets) if (variable) out = out.split(value).join(`{{ env_var('${variable}') }}`);
  return out;
}
