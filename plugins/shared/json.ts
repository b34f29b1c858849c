/**
 * JSON that keeps every number's value exactly. A transformed record is JSON computed in the
 * warehouse, and it may hold numbers that a JS number cannot: integers beyond 2^53 (BIGINT,
 * HUGEINT), wide DECIMALs. JSON.parse would round them, and the app would get other digits than
 * history records. Here a number is a plain JS number when that holds its value exactly (3.0 and
 * 3 alike), and an {@link ExactNumber} otherwise; {@link stringifyJson} writes an ExactNumber back
 * digit for digit, as the warehouse wrote it.
 */
import { compareNumber, isInteger, isLosslessNumber, LosslessNumber, parse, stringify } from 'lossless-json';
import type { Change } from '../plugin.ts';

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

/** The accessor of a LazyChange's `record`: an own, enumerable property, so that `{ ...change }` and JSON.stringify see it. */
const lazyRecord: PropertyDescriptor = {
  enumerable: true,
  get(this: LazyChange) {
    return this.read();
  },
  set(this: LazyChange, value: Record<string, unknown>) {
    this.replace(value);
  },
};

/**
 * A change whose `record` is parsed from the warehouse's JSON text when it is first read (or
 * replaced when it is first set). Until then {@link recordJson} gives that text as it is.
 */
class LazyChange implements Change {
  declare record: Record<string, unknown>;
  #text: string | undefined;
  #record: Record<string, unknown> | undefined;

  constructor(
    readonly key: string,
    readonly action: Change['action'],
    readonly appId: string | null | undefined,
    text: string,
  ) {
    this.#text = text;
    Object.defineProperty(this, 'record', lazyRecord);
  }

  read(): Record<string, unknown> {
    if (this.#record === undefined) {
      this.#record = parseJson(this.#text!) as Record<string, unknown>;
      this.#text = undefined;
    }
    return this.#record;
  }

  replace(value: Record<string, unknown>): void {
    this.#record = value;
    this.#text = undefined;
  }

  /** The record's JSON text as the warehouse wrote it, while nothing has read the record. */
  text(): string | undefined {
    return this.#text;
  }
}

/** A change whose record is the warehouse's JSON text `text`, parsed when it is first read. */
export function lazyChange(fields: Omit<Change, 'record'>, text: string): Change {
  return new LazyChange(fields.key, fields.action, fields.appId, text);
}

/**
 * A change's record as JSON text: the warehouse's own text while nothing has read the record (no
 * parse, and every digit as the warehouse wrote it, as history holds it), else {@link stringifyJson}.
 */
export function recordJson(change: Change): string {
  return (change instanceof LazyChange ? change.text() : undefined) ?? stringifyJson(change.record);
}

/**
 * JSON text that stands in for a value of a template's context: `| tojson` prints it as it is (see
 * TemplateRenderer.jsonOnly). Given as a function, the text is made when it is first printed.
 */
export class JsonText {
  #text: string | (() => string);

  constructor(text: string | (() => string)) {
    this.#text = text;
  }

  get text(): string {
    if (typeof this.#text === 'function') this.#text = this.#text();
    return this.#text;
  }
}
