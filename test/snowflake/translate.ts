/**
 * The Snowflake-to-DuckDB translation of the wire emulator. It is deliberately small: it
 * translates only the constructs that ebb's Snowflake dialect emits, and it rejects, as Snowflake
 * would, what ebb must never send there. Anything else runs on DuckDB as written, so drift in the
 * dialect shows up as a DuckDB error or as one of the rejections below.
 *
 * It works on tokens, so that string literals, quoted identifiers and comments are never touched.
 * Unquoted words are upper-cased, which is what Snowflake does with unquoted identifiers: a
 * `CREATE TABLE t (email …)` makes a column EMAIL, and results name it EMAIL.
 */

export interface Token {
  kind: 'word' | 'quoted' | 'string' | 'number' | 'space' | 'comment' | 'param' | 'punct';
  text: string;
}

/** A statement that Snowflake would refuse: the emulator answers with this code and SQL state. */
export class SnowflakeRejection extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly sqlState: string,
  ) {
    super(message);
  }
}

const TOKEN = /\s+|--[^\n]*|\/\*[\s\S]*?\*\/|'(?:[^'\\]|''|\\[\s\S])*'|"(?:[^"]|"")*"|[A-Za-z_][A-Za-z0-9_$]*|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|\.\d+|\?|::|[\s\S]/g;

export function tokenize(sql: string): Token[] {
  const tokens: Token[] = [];
  for (const [text] of sql.matchAll(TOKEN)) {
    const c = text[0];
    const kind: Token['kind'] = /\s/.test(c)
      ? 'space'
      : text.startsWith('--') || text.startsWith('/*')
        ? 'comment'
        : c === "'"
          ? 'string'
          : c === '"'
            ? 'quoted'
            : /[A-Za-z_]/.test(c)
              ? 'word'
              : /[\d.]/.test(c) && text !== '.'
                ? 'number'
                : c === '?'
                  ? 'param'
                  : 'punct';
    tokens.push({ kind, text });
  }
  return tokens;
}

export const significant = (t: Token) => t.kind !== 'space' && t.kind !== 'comment';
const upper = (t: Token | undefined) => (t && t.kind === 'word' ? t.text.toUpperCase() : t?.text ?? '');

/** Functions renamed word for word (same arguments): Snowflake name → DuckDB name. */
const FUNCTIONS: Record<string, string> = {
  OBJECT_CONSTRUCT_KEEP_NULL: 'json_object',
  ARRAY_CONSTRUCT: 'json_array',
  PARSE_JSON: 'json',
  JSON_EXTRACT_PATH_TEXT: 'json_extract_string',
  // A VARIANT is JSON here; IS_REAL and TO_VARCHAR of one are macros of the emulator's sessions.
  TO_VARIANT: 'to_json',
};
/** Aggregates whose order Snowflake gives after the call, `WITHIN GROUP (ORDER BY …)`, and DuckDB inside it: Snowflake name → DuckDB name. */
const WITHIN_GROUP: Record<string, string> = { LISTAGG: 'string_agg', ARRAY_AGG: 'list' };
/** Types: Snowflake name → DuckDB name. */
const TYPES: Record<string, string> = { VARIANT: 'JSON', TIMESTAMP_NTZ: 'TIMESTAMP' };
/** Calls replaced whole (with their parentheses): Snowflake text → DuckDB text. */
const CALLS: Array<{ match: string[]; to: string }> = [
  { match: ['SYSDATE', '(', ')'], to: 'CAST(now() AS TIMESTAMP)' },
  { match: ['UUID_STRING', '(', ')'], to: 'CAST(uuid() AS VARCHAR)' },
  // Order-independent, 0 for no rows, like HASH_AGG; the values differ, which nothing compares.
  { match: ['HASH_AGG', '(', '*', ')'], to: 'coalesce(sum(hash(*COLUMNS(*))), 0)' },
  // A replaced view keeps its grants on Snowflake; DuckDB has no grants.
  { match: ['COPY', 'GRANTS'], to: '' },
];
/** DuckDB spellings that do not exist on Snowflake: sending one is a dialect bug. */
const DUCKDB_ONLY_FUNCTIONS = new Set(['JSON_OBJECT', 'JSON_ARRAY', 'NOW', 'SHA256', 'LIST_VALUE', 'STRUCT_PACK', 'JSON_EXTRACT_STRING']);
/** Semi-structured constructors that Snowflake refuses inside INSERT … VALUES. */
const NOT_IN_VALUES = new Set(['PARSE_JSON', 'OBJECT_CONSTRUCT', 'OBJECT_CONSTRUCT_KEEP_NULL', 'ARRAY_CONSTRUCT', 'TO_VARIANT', 'TO_OBJECT', 'TO_ARRAY']);

function compilationError(message: string, code = '001003', sqlState = '42000'): SnowflakeRejection {
  return new SnowflakeRejection(`SQL compilation error:\n${message}`, code, sqlState);
}

/** The kind of statement, as Snowflake's statementTypeId (the driver counts changed rows only for DML). */
export function statementType(tokens: Token[]): { name: string; id: number } {
  const first = tokens.filter(significant).find((t) => t.text !== '(');
  const word = upper(first);
  const ids: Record<string, number> = { SELECT: 0x1000, WITH: 0x1000, VALUES: 0x1000, SHOW: 0x4000, DESCRIBE: 0x4000, INSERT: 0x3100, UPDATE: 0x3200, DELETE: 0x3300, MERGE: 0x3400 };
  return { name: word, id: ids[word] ?? 0x6000 };
}

/**
 * Refuses what Snowflake refuses and ebb could plausibly emit by mistake. `arrayBinds` says that
 * the request bound arrays (a bulk insert), which Snowflake accepts only on INSERT … VALUES.
 */
export function check(tokens: Token[], options: { arrayBinds?: boolean; multiStatementCount?: number } = {}): void {
  const sig = tokens.filter(significant);
  const words = sig.map(upper);
  // Several statements in one request need MULTI_STATEMENT_COUNT.
  const statements = 1 + sig.filter((t, i) => t.text === ';' && i < sig.length - 1).length;
  if (statements > 1 && options.multiStatementCount !== 0 && statements !== (options.multiStatementCount ?? 1)) {
    throw new SnowflakeRejection(`Actual statement count ${statements} did not match the desired statement count ${options.multiStatementCount ?? 1}.`, '000008', '0A000');
  }
  for (let i = 0; i < sig.length; i++) {
    const w = words[i];
    if (sig[i].kind !== 'word') continue;
    if (w === 'RETURNING') throw compilationError("syntax error: unexpected 'RETURNING' (Snowflake has no RETURNING; use identifiers made by the app)");
    if (w === 'ON' && words[i + 1] === 'CONFLICT') throw compilationError("syntax error: unexpected 'CONFLICT' (Snowflake has no ON CONFLICT; use MERGE)");
    if (w === 'MATCHED' && words[i + 1] === 'BY') throw compilationError(`syntax error: unexpected 'BY' (Snowflake has no WHEN NOT MATCHED BY ${words[i + 2]})`);
    if (w === 'INSERT' && words[i + 1] === 'OR') throw compilationError("syntax error: unexpected 'OR' (INSERT OR REPLACE/IGNORE is DuckDB's)");
    if (w === 'JSON' && words[i + 1] !== '(') throw compilationError("Unsupported data type 'JSON'. (Snowflake's is VARIANT)", '002040', '42601');
    if (DUCKDB_ONLY_FUNCTIONS.has(w) && words[i + 1] === '(') throw compilationError(`Unknown function ${w}`, '002140', '42601');
  }
  const type = statementType(tokens).name;
  // INSERT … VALUES: no semi-structured constructors inside the VALUES list.
  const valuesAt = type === 'INSERT' ? topLevelIndex(sig, 'VALUES') : -1;
  if (valuesAt >= 0) {
    for (let i = valuesAt + 1; i < sig.length; i++) {
      if (NOT_IN_VALUES.has(words[i]) && words[i + 1] === '(') throw compilationError(`Invalid expression [${sig[i].text}(…)] in VALUES clause`, '002014', '22000');
    }
  }
  if (options.arrayBinds && valuesAt < 0) {
    // What Snowflake answers to array binds on anything but INSERT … VALUES (e.g. INSERT … SELECT ?).
    const position = sig.findIndex((t) => t.kind === 'param');
    throw compilationError(`error line 1 at position ${Math.max(position, 0)}\nBind variable ? not set.`, '002049', '42601');
  }
}

/** The index of a keyword at parenthesis depth 0, or -1. */
function topLevelIndex(sig: Token[], keyword: string, from = 0): number {
  let depth = 0;
  for (let i = from; i < sig.length; i++) {
    if (sig[i].text === '(') depth++;
    else if (sig[i].text === ')') depth--;
    else if (depth === 0 && upper(sig[i]) === keyword) return i;
  }
  return -1;
}

/** Rewrites checked Snowflake SQL into DuckDB SQL (see the tables above). */
export function translate(tokens: Token[]): Token[] {
  const out: Token[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (t.kind === 'string' && t.text.includes('\\')) {
      // A backslash escapes in a Snowflake string, not in DuckDB's: the same value, re-quoted.
      out.push({ kind: 'string', text: `'${snowflakeString(t.text).replaceAll("'", "''")}'` });
      continue;
    }
    if (t.kind !== 'word') {
      out.push(t);
      continue;
    }
    const w = t.text.toUpperCase();
    const next = tokens.slice(i + 1).find(significant);
    const call = CALLS.find((c) => c.match[0] === w && matchesAt(tokens, i, c.match));
    const ordered = WITHIN_GROUP[w] && next?.text === '(' ? withinGroup(tokens, i) : undefined;
    if (ordered) {
      const aggregate: Token[] = [{ kind: 'word', text: WITHIN_GROUP[w] }, { kind: 'punct', text: '(' }, ...translate(ordered.args), { kind: 'space', text: ' ' }, ...translate(ordered.order), { kind: 'punct', text: ')' }];
      // LISTAGG's text is a VARCHAR: past 16 MB, Snowflake fails the statement (the emulator's macro listagg_limit).
      if (w === 'LISTAGG') out.push({ kind: 'word', text: 'listagg_limit' }, { kind: 'punct', text: '(' }, ...aggregate, { kind: 'punct', text: ')' });
      else out.push(...aggregate);
      i = ordered.end;
    } else if (call) {
      out.push({ kind: 'punct', text: call.to });
      i = endOfMatch(tokens, i, call.match);
    } else if (FUNCTIONS[w] && next?.text === '(') out.push({ kind: 'word', text: FUNCTIONS[w] });
    else if (TYPES[w] && next?.text !== '(') out.push({ kind: 'word', text: TYPES[w] });
    else out.push({ kind: 'word', text: w });
  }
  return out;
}

/** The index of the `)` that closes the `(` at `open`. */
function closing(tokens: Token[], open: number): number {
  let depth = 0;
  for (let i = open; i < tokens.length; i++) {
    if (tokens[i].text === '(') depth++;
    else if (tokens[i].text === ')' && --depth === 0) return i;
  }
  throw new Error('unbalanced parentheses');
}

/** For `NAME(args) WITHIN GROUP (ORDER BY …)` at `at`: the tokens of args and of `ORDER BY …`, and the index of the last `)`. */
function withinGroup(tokens: Token[], at: number): { args: Token[]; order: Token[]; end: number } | undefined {
  const open = tokens.findIndex((t, i) => i > at && t.text === '(');
  const close = closing(tokens, open);
  const end = endOfMatch(tokens, close + 1, ['WITHIN', 'GROUP', '(']);
  if (end < 0) return undefined;
  const last = closing(tokens, end);
  return { args: tokens.slice(open + 1, close), order: tokens.slice(end + 1, last), end: last };
}

function matchesAt(tokens: Token[], at: number, match: string[]): boolean {
  return endOfMatch(tokens, at, match) >= 0;
}

/** The index of the last token of `match` starting at `at` (spaces skipped), or -1. */
function endOfMatch(tokens: Token[], at: number, match: string[]): number {
  let i = at;
  for (let m = 0; m < match.length; m++) {
    while (i < tokens.length && !significant(tokens[i])) i++;
    if (i >= tokens.length || upper(tokens[i]) !== match[m]) return -1;
    if (m < match.length - 1) i++;
  }
  return i;
}

export const text = (tokens: Token[]) => tokens.map((t) => t.text).join('');

/** An INSERT … VALUES (…) split at its VALUES list: the head up to VALUES, and the one tuple after it. */
export function splitValues(tokens: Token[]): { head: string; tuple: string } {
  const at = tokens.map((t, i) => [t, i] as const).filter(([t]) => significant(t));
  const values = topLevelIndex(
    at.map(([t]) => t),
    'VALUES',
  );
  const index = at[values][1];
  return { head: text(tokens.slice(0, index + 1)), tuple: text(tokens.slice(index + 1)).trim().replace(/;$/, '') };
}

/**
 * A VALUES list whose tuples hold binds only, `VALUES (?, ?), (?, ?)`, when the statement has no
 * other bind: the tokens from VALUES to the last tuple's `)` (`start`, `end`, exclusive), the
 * number of tuples and their width. Null for any other statement.
 */
export function boundValues(tokens: Token[]): { start: number; end: number; tuples: number; width: number } | null {
  const start = tokens.findIndex((t) => t.kind === 'word' && t.text.toUpperCase() === 'VALUES');
  if (start < 0 || tokens.slice(0, start).some((t) => t.kind === 'param')) return null;
  let i = start + 1;
  const next = () => {
    while (i < tokens.length && !significant(tokens[i])) i++;
    return tokens[i];
  };
  let tuples = 0;
  let width = -1;
  let end = -1;
  for (;;) {
    if (next()?.text !== '(') return null;
    i++;
    let n = 0;
    for (;;) {
      if (next()?.kind !== 'param') return null;
      i++;
      n++;
      const t = next();
      i++;
      if (t?.text === ')') break;
      if (t?.text !== ',') return null;
    }
    if (width >= 0 && n !== width) return null;
    width = n;
    tuples++;
    end = i;
    if (next()?.text !== ',') break;
    i++;
  }
  return tokens.slice(end).some((t) => t.kind === 'param') ? null : { start, end, tuples, width };
}

/**
 * For a MERGE: a query that finds a target row matched by more than one source row, which
 * Snowflake refuses ("Duplicate row detected during DML action") and DuckDB applies silently.
 * Returns the query over the translated tokens and the indexes of the binds it uses, or null.
 */
export function mergeDuplicateCheck(tokens: Token[]): { sql: string; binds: number[] } | null {
  const at = tokens.map((t, i) => [t, i] as const).filter(([t]) => significant(t));
  const sig = at.map(([t]) => t);
  if (upper(sig[0]) !== 'MERGE' || upper(sig[1]) !== 'INTO') return null;
  const using = topLevelIndex(sig, 'USING');
  const on = topLevelIndex(sig, 'ON', using);
  const when = topLevelIndex(sig, 'WHEN', on);
  if (using < 0 || on < 0 || when < 0) return null;
  // The target's alias is its last word when one follows the name (`t s`, `t AS s`).
  const target = sig.slice(2, using).filter((t) => upper(t) !== 'AS');
  const hasAlias = target.length >= 2 && target[target.length - 2].text !== '.';
  const alias = target[target.length - 1].text;
  const relation = (hasAlias ? target.slice(0, -1) : target).map((t) => t.text).join('');
  // The source and the condition as written, spaces and all.
  const span = (from: number, to: number) => text(tokens.slice(at[from][1], at[to][1]));
  const params = (from: number, to: number) => {
    const before = sig.slice(0, from).filter((t) => t.kind === 'param').length;
    return sig.slice(from, to).filter((t) => t.kind === 'param').map((_t, k) => before + k);
  };
  return {
    sql: `SELECT 1 FROM ${relation} AS ${alias} JOIN ${span(using + 1, on)} ON ${span(on + 1, when)} GROUP BY ${alias}.rowid HAVING count(*) > 1 LIMIT 1`,
    binds: [...params(using + 1, on), ...params(on + 1, when)],
  };
}

/**
 * The value of a Snowflake string literal (with its quotes): `''` is a quote, and a backslash
 * escapes: `\\`, `\'`, `\n`, `\t`, `\r`, `\b`, `\f`, `\0`, `\xHH`, `\uHHHH`; any other `\c` is `c`.
 */
export function snowflakeString(literal: string): string {
  const named: Record<string, string> = { n: '\n', t: '\t', r: '\r', b: '\b', f: '\f', '0': '\0' };
  return literal.slice(1, -1).replace(/''|\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|[\s\S])/g, (m: string, e?: string) => {
    if (m === "''") return "'";
    const escape = e ?? '';
    if (/^[xu]/.test(escape) && escape.length > 1) return String.fromCharCode(parseInt(escape.slice(1), 16));
    return named[escape] ?? escape;
  });
}

/** The name an identifier token stands for: a quoted one as written, an unquoted one upper-cased. */
export function identifierOf(t: Token): string {
  return t.kind === 'quoted' ? t.text.slice(1, -1).replaceAll('""', '"') : t.text.toUpperCase();
}

/** The parts of a (possibly qualified) name written as text, e.g. `"EBB"."EBB_X_STREAM"` or `ebb.t`. */
export function nameParts(name: string): string[] {
  return tokenize(name)
    .filter(significant)
    .filter((t) => t.text !== '.')
    .map(identifierOf);
}

/** Snowflake's task and stream statements, which DuckDB does not have: the emulator runs them itself. */
export type ObjectStatement =
  | { kind: 'create-task'; replace: boolean; ifNotExists: boolean; name: string[]; params: Record<string, string>; after: string[][]; condition: string | null; body: string }
  | { kind: 'alter-task'; ifExists: boolean; name: string[]; action: 'RESUME' | 'SUSPEND' }
  | { kind: 'drop-task'; ifExists: boolean; name: string[] }
  | { kind: 'execute-task'; name: string[] }
  | { kind: 'show'; what: 'TASKS' | 'STREAMS' | 'TABLES' | 'VIEWS' | 'DYNAMIC TABLES'; like: string | null; scope: { kind: 'SCHEMA' | 'DATABASE' | 'ACCOUNT'; name: string[] } | null }
  | { kind: 'create-stream'; replace: boolean; ifNotExists: boolean; name: string[]; on: 'TABLE' | 'VIEW' | 'DYNAMIC TABLE'; table: string[]; params: Record<string, string> }
  | { kind: 'drop-stream'; ifExists: boolean; name: string[] }
  | { kind: 'alter-session'; params: Record<string, string> };

/** The properties that CREATE TASK takes here (Snowflake has more; the emulator refuses the others). */
const TASK_PROPERTIES = new Set(['WAREHOUSE', 'USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE', 'SCHEDULE', 'COMMENT', 'ALLOW_OVERLAPPING_EXECUTION', 'USER_TASK_TIMEOUT_MS', 'SUSPEND_TASK_AFTER_NUM_FAILURES', 'TASK_AUTO_RETRY_ATTEMPTS']);
const STREAM_PROPERTIES = new Set(['APPEND_ONLY', 'SHOW_INITIAL_ROWS', 'COMMENT']);

/**
 * Parses CREATE [OR REPLACE] TASK / ALTER TASK … RESUME|SUSPEND / DROP TASK / EXECUTE TASK /
 * SHOW TASKS / CREATE [OR REPLACE] STREAM … ON TABLE / DROP STREAM / SHOW STREAMS, or returns
 * null for any other statement. Refuses, as a compilation error, what it does not emulate.
 */
export function parseObjectStatement(tokens: Token[]): ObjectStatement | null {
  const at = tokens.map((t, i) => [t, i] as const).filter(([t]) => significant(t));
  const sig = at.map(([t]) => t);
  const words = sig.map(upper);
  if (words[words.length - 1] === ';') {
    sig.pop();
    words.pop();
    at.pop();
  }
  let i = 0;
  const accept = (...expected: string[]) => {
    if (!expected.every((w, k) => words[i + k] === w)) return false;
    i += expected.length;
    return true;
  };
  const name = (): string[] => {
    const parts: string[] = [];
    for (;;) {
      const t = sig[i];
      if (!t || (t.kind !== 'word' && t.kind !== 'quoted')) throw compilationError(`syntax error: unexpected '${t?.text ?? 'end of statement'}' (a name was expected)`);
      parts.push(identifierOf(t));
      i++;
      if (sig[i]?.text !== '.') return parts;
      i++;
    }
  };
  const value = (): string => {
    const t = sig[i++];
    if (!t) throw compilationError('syntax error: unexpected end of statement (a value was expected)');
    return t.kind === 'string' ? snowflakeString(t.text) : t.kind === 'word' || t.kind === 'quoted' ? identifierOf(t) : t.text;
  };
  const properties = (allowed: Set<string>, object: string, stopAt: string[] = []): Record<string, string> => {
    const params: Record<string, string> = {};
    while (i < sig.length && !stopAt.includes(words[i])) {
      const key = words[i];
      if (sig[i].kind !== 'word' || !allowed.has(key) || sig[i + 1]?.text !== '=') throw compilationError(`invalid property '${sig[i].text}' for '${object}' (or not emulated)`);
      i += 2;
      params[key] = value();
    }
    return params;
  };
  const rest = () => text(tokens.slice(at[i][1])).trim();
  const end = () => {
    if (i < sig.length) throw compilationError(`syntax error: unexpected '${sig[i].text}'`);
  };

  if (accept('CREATE')) {
    const replace = accept('OR', 'REPLACE');
    if (accept('TASK')) {
      const ifNotExists = accept('IF', 'NOT', 'EXISTS');
      const taskName = name();
      const params = properties(TASK_PROPERTIES, 'TASK', ['WHEN', 'AS', 'AFTER']);
      const after: string[][] = [];
      if (accept('AFTER')) {
        do after.push(name());
        while (accept(','));
      }
      let condition: string | null = null;
      if (accept('WHEN')) {
        const from = i;
        const as = topLevelIndex(sig, 'AS', from);
        if (as < 0) throw compilationError('syntax error: a task needs AS <statement>');
        condition = text(tokens.slice(at[from][1], at[as][1])).trim();
        i = as;
      }
      if (!accept('AS') || i >= sig.length) throw compilationError('syntax error: a task needs AS <statement>');
      if (replace && ifNotExists) throw compilationError('OR REPLACE and IF NOT EXISTS are incompatible');
      return { kind: 'create-task', replace, ifNotExists, name: taskName, params, after, condition, body: rest() };
    }
    if (accept('STREAM')) {
      const ifNotExists = accept('IF', 'NOT', 'EXISTS');
      const streamName = name();
      const on = accept('ON', 'TABLE') ? 'TABLE' : accept('ON', 'VIEW') ? 'VIEW' : accept('ON', 'DYNAMIC', 'TABLE') ? 'DYNAMIC TABLE' : null;
      if (!on) throw compilationError('syntax error: a stream needs ON TABLE, ON VIEW or ON DYNAMIC TABLE <name> (other sources are not emulated)');
      const table = name();
      const params = properties(STREAM_PROPERTIES, 'STREAM');
      if (replace && ifNotExists) throw compilationError('OR REPLACE and IF NOT EXISTS are incompatible');
      return { kind: 'create-stream', replace, ifNotExists, name: streamName, on, table, params };
    }
    return null;
  }
  if (accept('ALTER', 'SESSION', 'SET')) {
    const params: Record<string, string> = {};
    while (i < sig.length) {
      const key = words[i];
      if (sig[i].kind !== 'word' || sig[i + 1]?.text !== '=') throw compilationError(`syntax error: unexpected '${sig[i].text}' in ALTER SESSION SET`);
      i += 2;
      params[key] = value();
    }
    if (Object.keys(params).length === 0) throw compilationError('syntax error: ALTER SESSION SET needs a parameter');
    return { kind: 'alter-session', params };
  }
  if (accept('ALTER', 'TASK')) {
    const ifExists = accept('IF', 'EXISTS');
    const taskName = name();
    const action = words[i++];
    if (action !== 'RESUME' && action !== 'SUSPEND') throw compilationError(`ALTER TASK … ${sig[i - 1]?.text ?? ''}: only RESUME and SUSPEND are emulated`);
    end();
    return { kind: 'alter-task', ifExists, name: taskName, action };
  }
  if (accept('DROP', 'TASK') || accept('DROP', 'STREAM')) {
    const kind = words[i - 1] === 'TASK' ? 'drop-task' : 'drop-stream';
    const ifExists = accept('IF', 'EXISTS');
    const objectName = name();
    end();
    return { kind, ifExists, name: objectName };
  }
  if (accept('EXECUTE', 'TASK')) {
    const taskName = name();
    end();
    return { kind: 'execute-task', name: taskName };
  }
  if (accept('SHOW')) {
    accept('TERSE');
    const what = accept('DYNAMIC', 'TABLES') ? 'DYNAMIC TABLES' : (['TASKS', 'STREAMS', 'TABLES', 'VIEWS'] as const).find((w) => w === words[i]);
    if (!what) return null;
    if (what !== 'DYNAMIC TABLES') i++;
    let like: string | null = null;
    if (accept('LIKE')) {
      const t = sig[i++];
      if (t?.kind !== 'string') throw compilationError('syntax error: LIKE takes a string');
      like = snowflakeString(t.text);
    }
    let scope: { kind: 'SCHEMA' | 'DATABASE' | 'ACCOUNT'; name: string[] } | null = null;
    if (accept('IN')) {
      const kind = words[i++];
      if (kind !== 'SCHEMA' && kind !== 'DATABASE' && kind !== 'ACCOUNT') throw compilationError(`syntax error: unexpected '${sig[i - 1]?.text ?? ''}'`);
      scope = { kind, name: kind === 'ACCOUNT' || i >= sig.length ? [] : name() };
    }
    end();
    return { kind: 'show', what, like, scope };
  }
  return null;
}

/** A SHOW … LIKE pattern as a regular expression: case-insensitive, % and _ as in LIKE. */
export function likePattern(pattern: string): RegExp {
  const source = [...pattern].map((c) => (c === '%' ? '.*' : c === '_' ? '.' : c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('');
  return new RegExp(`^${source}$`, 'is');
}
