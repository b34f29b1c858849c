/** The nunjucks renderer that plugins use for request templates: the project's templates win. */
import nunjucks from 'nunjucks';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TemplateRenderer } from '../plugins/plugin.ts';

const builtinTemplates = fileURLToPath(new URL('../templates/', import.meta.url));

/** A renderer that looks in `<project>/templates/` first, then in ebb's `templates/`. */
export function templateRenderer(projectDir: string): TemplateRenderer {
  const loader = new nunjucks.FileSystemLoader([join(projectDir, 'templates'), builtinTemplates]);
  const env = new nunjucks.Environment(loader, { autoescape: false, throwOnUndefined: false });
  // `tojson` as in Jinja: a value as JSON text (nunjucks calls it `dump`).
  env.addFilter('tojson', (value: unknown) => JSON.stringify(value ?? null));
  // Plugins render the same few templates for every record: compile each once.
  const compiled = new Map<string, nunjucks.Template>();
  return {
    renderString: (template, context) => {
      let t = compiled.get(template);
      if (!t) {
        t = new nunjucks.Template(template, env);
        compiled.set(template, t);
      }
      return t.render(context);
    },
    render: (name, context) => env.render(name, context),
  };
}
