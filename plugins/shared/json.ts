/**
 * JSON that keeps every number's value exactly. A transformed record is JSON computed in the
 * warehouse, and it may hold numbers that a JS number cannot: integers beyond 2^53 (BIGINT,
 * HUGEINT), wide DECIMALs. JSON.parse would round them, and the app would get other digits than
 * history records. Here a number is a plain JS number when that holds its value exactly (3.0 and
 * 3 alike), and an {@link ExactNumber} otherwise; {@link stringifyJson} writes an ExactNumber back
 * digit for digit, as the warehouse wrote it.
 */
import { compareNumber, isInteger, isLosslessNumber, LosslessNumber, parse, stringify } from 'lossless-json';

/**
 * A number of a record that a JS number would change, kept as the warehouse's text. A template
 * prints it as that text. Compared or computed with (`>`, `*`), it is the nearest double; with `+`,
 * an integer is a bigint (adding a plain number to it is an error that fails the record) and a
 * decimal is its text (joined, not added): compute with such numbers in the mapping's SQL.
 */
export class ExactNumber extends LosslessNumber {
  /** `+` and printing ask for 'default': the exact digits, as a bigint or as text. */
  [Symbol.toPrimitive](hint: 'string' | 'number' | 'default'): string | number | bigint {
    if (hint === 'string') return this.value;
    if (hint === 'number') return Number(this.value);
    return isInteger(this.value) ? BigInt(this.value) : this.value;
  }

  /** JSON.stringify (a plugin that does not use stringifyJson) writes the exact digits, as a string. */
  toJSON(): string {
    return this.value;
  }
}

function parseNumber(text: string): number | ExactNumber {
  const n = Number(text);
  return Number.isFinite(n) && compareNumber(String(n), text) === 0 ? n : new ExactNumber(text);
}

/**
 * A run of 16 digits (a number that a double may not hold: it keeps 15 for sure), or an exponent
 * of 3 digits (beyond a double's range). Text without either parses the same with JSON.parse,
 * which is several times faster: most records take that path.
 */
const mayNeedExact = /\d(?:\.?\d){15}|[eE][+-]?\d{3}/;

/** Parses JSON text; a number that a JS number cannot hold exactly becomes an ExactNumber. */
export function parseJson(text: string): unknown {
  return mayNeedExact.test(text) ? parse(text, null, parseNumber) : JSON.parse(text);
}

/** Whether a value holds no number that JSON.stringify would write otherwise (an ExactNumber, a bigint). */
function plain(value: unknown): boolean {
  if (typeof value === 'bigint') return false;
  if (value === null || typeof value !== 'object') return true;
  if (isLosslessNumber(value)) return false;
  if (Array.isArray(value)) return value.every(plain);
  for (const key in value) if (!plain((value as Record<string, unknown>)[key])) return false;
  return true;
}

/**
 * JSON text of a value, with ExactNumbers and bigints written as their exact digits. A value
 * without them (most records) goes through JSON.stringify, which is several times faster.
 */
export function stringifyJson(value: unknown, space?: number | string): string {
  if (plain(value)) return JSON.stringify(value ?? null, null, space) ?? 'null';
  return stringify(value ?? null, null, space) ?? 'null';
}

/** An identifier in an app's answer, as text: a string, or a number with all its digits. */
export function idText(value: unknown): string | undefined {
  return typeof value === 'string' || typeof value === 'number' || value instanceof ExactNumber ? String(value) : undefined;
}
