/**
 * The nunjucks renderer that plugins use for request templates: the project's templates win. A
 * name that is neither in the context nor a nunjucks global is an error (`undefined variable`), not
 * an empty string; null values still render empty.
 */
import nunjucks from 'nunjucks';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TemplateRenderer } from '../plugins/plugin.ts';
import { JsonText, stringifyJson } from '../plugins/shared/json.ts';
import { packageRoot } from './paths.ts';

const builtinTemplates = fileURLToPath(new URL('templates/', packageRoot));

/** The parts of nunjucks that its type declarations leave out: the lexer and the render frame. */
interface Tokenizer {
  index: number;
  nextToken(): { type: string } | null;
}
interface Frame {
  lookup(name: string): unknown;
}
/** A node of a template's syntax tree: its type, and the names of the fields that hold its children. */
interface SyntaxNode {
  typename: string;
  fields: string[];
  [field: string]: unknown;
}
const internals = nunjucks as unknown as {
  lexer: { lex(source: string): Tokenizer };
  parser: { parse(source: string): SyntaxNode };
  runtime: { Frame: new () => Frame; SafeString: new (value: string) => object };
};
type RenderWithFrame = (context: object, frame: Frame) => string;

/** The message of a variable lookup that found nothing. */
const undefinedVariable = (name: string) => `undefined variable "${name}"`;

/**
 * A renderer that looks in `<project>/templates/` first, then in ebb's `templates/`. Its errors
 * are one line: the reason, and where in the template for a syntax error.
 */
export function templateRenderer(projectDir: string): TemplateRenderer {
  const loader = new nunjucks.FileSystemLoader([join(projectDir, 'templates'), builtinTemplates]);
  const env = new nunjucks.Environment(loader, { autoescape: false, throwOnUndefined: false });
  // `tojson` as in Jinja: a value as JSON text (nunjucks calls it `dump`). Both keep the exact
  // digits of a record's numbers (plugins/shared/json.ts), which JSON.stringify would not.
  env.addFilter('tojson', (value: unknown) => (value instanceof JsonText ? value.text : stringifyJson(value)));
  env.addFilter('dump', (value: unknown, space?: number | string) => stringifyJson(value, space));
  // A value already encoded by `urlencode` is not encoded again in a path.
  const urlencode = env.getFilter('urlencode') as (value: unknown) => string;
  env.addFilter('urlencode', (value: unknown) => new internals.runtime.SafeString(urlencode(value)));
  env.addFilter('path_segment', pathSegment);

  // Plugins render the same few templates for every record: compile each once (a path template
  // under its own key, as it compiles differently).
  const compiled = new Map<string, nunjucks.Template>();
  const template = (source: string, path = false): nunjucks.Template => {
    const key = path ? `path:${source}` : `text:${source}`;
    let t = compiled.get(key);
    if (!t) {
      t = new nunjucks.Template(path ? segmentTemplate(source) : source, env, undefined, true);
      if (compiled.size < 1000) compiled.set(key, t);
    }
    return t;
  };
  const jsonOnly = new Map<string, boolean>();
  const render = (t: nunjucks.Template, context: Record<string, unknown>): string => (t.render as unknown as RenderWithFrame)(context, strictFrame(env, context));
  const rethrow = (e: unknown): never => {
    throw new Error(templateErrorText(e));
  };

  return {
    renderString: (source, context) => {
      try {
        return render(template(source), context);
      } catch (e) {
        return rethrow(e);
      }
    },
    renderPath: (source, context) => {
      try {
        return render(template(source, true), context);
      } catch (e) {
        return rethrow(e);
      }
    },
    render: (name, context) => {
      try {
        return render(env.getTemplate(name, true), context);
      } catch (e) {
        return rethrow(e);
      }
    },
    jsonOnly: (source, name) => {
      const key = `${name}:${source}`;
      let only = jsonOnly.get(key);
      if (only === undefined) {
        only = usedOnlyAsJson(source, name);
        if (jsonOnly.size < 1000) jsonOnly.set(key, only);
      }
      return only;
    },
    check: (source, context, options = {}) => {
      let t: nunjucks.Template;
      try {
        t = template(source, options.path);
      } catch (e) {
        return templateErrorText(e);
      }
      try {
        render(t, context);
      } catch (e) {
        // Anything else may come from the sample values alone, and is left to the run.
        const text = templateErrorText(e);
        if (/^undefined variable |^filter not found|^template not found/.test(text)) return text;
      }
      return undefined;
    },
  };
}

/**
 * The frame a render starts from. nunjucks looks a name up in the template's frames (loop
 * variables, `set`), then in the context, then in its globals; this frame, at the bottom of the
 * chain, makes a name found in none of them an error instead of an empty string.
 */
function strictFrame(env: nunjucks.Environment, context: Record<string, unknown>): Frame {
  const frame = new internals.runtime.Frame();
  const globals = (env as unknown as { globals: object }).globals;
  frame.lookup = (name) => {
    if (name in context || name in globals) return undefined;
    throw new Error(undefinedVariable(name));
  };
  return frame;
}

/** Whether a template uses `name` only as `name | tojson`, and includes, imports and extends no other template. */
function usedOnlyAsJson(source: string, name: string): boolean {
  let root: SyntaxNode;
  try {
    root = internals.parser.parse(source);
  } catch {
    return false;
  }
  const isNode = (value: unknown): value is SyntaxNode => typeof value === 'object' && value !== null && 'typename' in value;
  const visit = (node: SyntaxNode, parent?: SyntaxNode, grandparent?: SyntaxNode): boolean => {
    if (['Include', 'Import', 'FromImport', 'Extends'].includes(node.typename)) return false;
    // `{{ name | tojson }}`: a Filter whose name is tojson, and whose arguments are this symbol alone.
    if (node.typename === 'Symbol' && node.value === name) {
      const args = parent?.children as unknown[] | undefined;
      return grandparent?.typename === 'Filter' && grandparent.args === parent && args?.length === 1 && (grandparent.name as SyntaxNode).value === 'tojson';
    }
    return node.fields.every((field) => {
      const child = node[field];
      const children = Array.isArray(child) ? child : [child];
      return children.every((c) => !isNode(c) || visit(c, node, parent));
    });
  };
  return visit(root);
}

/**
 * A path template in which every `{{ … }}` goes through `path_segment`: each output becomes one
 * URL path segment, whatever it holds. nunjucks' own lexer finds the tags, so a `}}` inside a
 * string literal is not mistaken for one.
 */
function segmentTemplate(source: string): string {
  const tokens = internals.lexer.lex(source);
  let out = '';
  let copied = 0;
  let open = -1;
  for (let at = tokens.index, token = tokens.nextToken(); token; at = tokens.index, token = tokens.nextToken()) {
    if (token.type === 'variable-start') open = tokens.index;
    else if (token.type === 'variable-end' && open >= 0) {
      const expression = source.slice(open, at);
      // The expression's text names it in an error; quotes and backslashes would end the literal.
      const label = expression.trim().replace(/["\\]/g, "'");
      out += `${source.slice(copied, open)} (${expression}) | path_segment("${label}") `;
      copied = at;
      open = -1;
    }
  }
  return out + source.slice(copied);
}

/**
 * One URL path segment: the value percent-encoded, so that `/`, `?` or `#` in the data cannot
 * change the path or add a query. A value marked `| safe` (or already `| urlencode`d) is left as it
 * is. Empty, `.` and `..` are refused, safe or not: each would make the URL point at another resource.
 */
function pathSegment(value: unknown, label: string): string {
  const text = value === null || value === undefined ? '' : String(value);
  if (text === '') throw new Error(`{{ ${label} }} is empty, and a URL path segment needs a value`);
  if (text === '.' || text === '..') throw new Error(`{{ ${label} }} is "${text}", which cannot be a URL path segment`);
  return value instanceof internals.runtime.SafeString ? text : encodeURIComponent(text);
}

/** A nunjucks error on one line: its reason, and where for a syntax error (`line 1, column 12`). */
function templateErrorText(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  const lines = message.split('\n').map((l) => l.trim()).filter(Boolean);
  const where = /\[Line (\d+), Column (\d+)\]/.exec(message);
  const reason = (lines.at(-1) ?? message).replace(/^(Template render error: )?(\([^)]*\)\s*)?(\[Line \d+, Column \d+\]\s*)?/, '').replace(/^(Error|TypeError|Template render error): /, '');
  return where && !reason.startsWith('undefined variable ') ? `${reason} (line ${where[1]}, column ${where[2]})` : reason;
}
