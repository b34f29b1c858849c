/**
 * Talking to a real `ebb serve` in tests: a server of a project on a free port, and `call()`, which
 * checks every answer against the server's own OpenAPI document (the schema of that route, status
 * and media type) before the test looks at it.
 */
import { z } from 'zod';
import { Validator } from '@seriousme/openapi-schema-validator';
import { loadProject } from '../../engine/config/load.ts';
import { createServer, type EbbServer, type ServerOptions } from '../../engine/server/server.ts';

export interface Answer<T = Record<string, unknown>> {
  status: number;
  type: string;
  body: T;
  headers: Headers;
}

export interface TestServer {
  url: string;
  server: EbbServer;
  /** Calls the API (a path under the server's root) and validates the answer against the document. */
  call<T = Record<string, unknown>>(method: string, path: string, options?: { body?: unknown; token?: string; headers?: Record<string, string> }): Promise<Answer<T>>;
  close(): Promise<void>;
}

type Spec = { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: unknown }> }> }>> };

/** The validation of each document text seen in this test file: servers of one file mostly serve the same document. */
const validated = new Map<string, Promise<{ resolved: Spec; valid: boolean; errors: unknown }>>();

/** The document of a running server, validated as OpenAPI 3.1 (once per text), with its references resolved. */
export async function documentOf(url: string, token?: string): Promise<{ raw: Record<string, unknown>; resolved: Spec; valid: boolean; errors: unknown }> {
  const text = await (await fetch(`${url}/api/v1/openapi.json`, { headers: token ? { authorization: `Bearer ${token}` } : {} })).text();
  let validation = validated.get(text);
  if (!validation) {
    validation = (async () => {
      const validator = new Validator();
      const { valid, errors } = await validator.validate(JSON.parse(text) as Record<string, unknown>);
      return { resolved: validator.resolveRefs() as unknown as Spec, valid, errors };
    })();
    validated.set(text, validation);
  }
  return { raw: JSON.parse(text) as Record<string, unknown>, ...(await validation) };
}

/** The document's route for a concrete path: `/api/v1/syncs/a%20b/runs` → `/api/v1/syncs/{name}/runs`. */
function routeOf(spec: Spec, path: string): string | undefined {
  const [bare] = path.split('?');
  return Object.keys(spec.paths).find((route) => new RegExp(`^${route.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(bare));
}

/** Starts a server of the project in `dir` on a free port of 127.0.0.1. */
export async function startServer(dir: string, options: Omit<ServerOptions, 'project'> = {}): Promise<TestServer> {
  const project = await loadProject(dir);
  const server = createServer({ project, log: () => undefined, ...options });
  const { url } = await server.listen({ port: 0 });
  const spec = (await documentOf(url, options.token)).resolved;
  const schemas = new Map<string, z.ZodType>();
  return {
    url,
    server,
    async call(method, path, { body, token = options.token, headers = {} } = {}) {
      const response = await fetch(url + path, {
        method,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const type = (response.headers.get('content-type') ?? '').split(';')[0];
      const text = await response.text();
      const parsed = (type.endsWith('json') ? JSON.parse(text) : text) as never;
      const route = routeOf(spec, path);
      if (route && type.endsWith('json')) {
        const operation = spec.paths[route][method.toLowerCase()];
        const schema = operation?.responses[String(response.status)]?.content?.[type]?.schema;
        if (!schema) throw new Error(`${method} ${path} answered ${response.status} ${type}, which the document does not describe for ${route}: ${text.slice(0, 500)}`);
        const key = `${method} ${route} ${response.status} ${type}`;
        if (!schemas.has(key)) schemas.set(key, z.fromJSONSchema(schema as never));
        const checked = schemas.get(key)!.safeParse(parsed);
        if (!checked.success) throw new Error(`${method} ${path} answered ${response.status} with a body that does not match the document: ${z.prettifyError(checked.error)}\n${text.slice(0, 1000)}`);
      }
      return { status: response.status, type, body: parsed, headers: response.headers };
    },
    close: () => server.close(),
  };
}
