/** The CSV format of the file plugin: RFC 4180 quoting, "\n" between records. */
import { stringifyJson } from '../shared/json.ts';

/** A CSV field as parsed: null for an empty unquoted field, else its text. */
export type CsvValue = string | null;

/**
 * One field. null is an empty field and '' is `""`, so the two stay distinct for readers that
 * care (DuckDB, PostgreSQL COPY); objects and arrays are written as JSON.
 */
function field(value: unknown): string {
  if (value === null || value === undefined) return '';
  const text =
    typeof value === 'string' ? value
    : value instanceof Date ? value.toISOString()
    : typeof value === 'object' ? stringifyJson(value)
    : String(value);
  return text === '' || /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** One CSV record (without its line end). */
export function csvRow(values: readonly unknown[]): string {
  return values.map(field).join(',');
}

/** A record's values in the order of `fields`, as one CSV record. */
export function csvRecord(record: Record<string, unknown>, fields: readonly string[]): string {
  return csvRow(fields.map((f) => record[f]));
}

/**
 * Groups physical lines into CSV records: a record goes on while it holds an odd number of
 * quotes, because a quoted field may contain line breaks and every other quote comes in pairs.
 */
export async function* csvRecords(lines: AsyncIterable<string>): AsyncGenerator<string> {
  let pending: string | null = null;
  let quotes = 0;
  for await (const line of lines) {
    pending = pending === null ? line : `${pending}\n${line}`;
    for (let i = line.indexOf('"'); i !== -1; i = line.indexOf('"', i + 1)) quotes++;
    if (quotes % 2 === 0) {
      yield pending;
      pending = null;
      quotes = 0;
    }
  }
  if (pending !== null) throw new Error('the file ends inside a quoted CSV field');
}

/** Splits one CSV record into its fields. */
export function parseCsvRecord(text: string): CsvValue[] {
  const values: CsvValue[] = [];
  let i = 0;
  for (;;) {
    if (text[i] === '"') {
      let value = '';
      i++;
      for (;;) {
        const close = text.indexOf('"', i);
        if (close === -1) throw new Error('unterminated quoted CSV field');
        value += text.slice(i, close);
        i = close + 1;
        if (text[i] !== '"') break;
        value += '"';
        i++;
      }
      values.push(value);
    } else {
      const end = text.indexOf(',', i);
      const raw = end === -1 ? text.slice(i) : text.slice(i, end);
      values.push(raw === '' ? null : raw);
      i = end === -1 ? text.length : end;
    }
    if (i >= text.length) return values;
    if (text[i] !== ',') throw new Error(`unexpected character after a quoted CSV field: ${text[i]}`);
    i++;
  }
}
