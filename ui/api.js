/** The REST API of `ebb serve`, called from the page: JSON in, JSON out, a refusal thrown as an ApiError. */

const base = '/api/v1';
const tokenKey = 'ebb-server-token';

/** Keeps the server's token for this tab (a server that listens beyond loopback needs one). */
export function saveToken(token) {
  sessionStorage.setItem(tokenKey, token);
}

/** A refusal of the API: its application/problem+json body, with the HTTP status. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `The server answered ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

/** Calls the API: `query` becomes the query string (empty values left out), `body` is sent as JSON. */
export async function api(path, { method = 'GET', query, body } = {}) {
  const url = new URL(base + path, location.origin);
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(name, String(value));
  }
  const headers = { accept: 'application/json, application/problem+json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const token = sessionStorage.getItem(tokenKey);
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text };
  }
  // The shell asks for the token, then loads the page again.
  if (response.status === 401) dispatchEvent(new Event('ebb:unauthorized'));
  if (!response.ok) throw new ApiError(response.status, data ?? {});
  return data;
}

/** One path segment: sync names and record keys may hold any character. */
export const seg = (value) => encodeURIComponent(String(value));
