/** Keeps secrets out of logs, history and error messages. */

const secrets = new Set<string>();

/** Registers a value resolved from the environment; short values are too common to mask. */
export function addSecret(value: string): void {
  if (value.length >= 6) secrets.add(value);
}

/** Replaces every registered secret in a text with `***`. */
export function redact(text: string): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join('***');
  return out;
}
