// One small fetch wrapper for /api/v1: JSON in and out, RFC 7807 problems turned into ApiError.

import type { ProblemDocument, ProblemLocation } from "./types";

/** The API root, relative to <base href> (which the server sets to where the UI is mounted). */
export const API_ROOT = new URL("api/v1/", document.baseURI).toString();

export class ApiError extends Error {
  readonly status: number;
  readonly problems: ProblemLocation[];

  constructor(status: number, detail: string, problems: ProblemLocation[] = []) {
    super(detail);
    this.status = status;
    this.problems = problems;
  }
}

function url(path: string, query?: Record<string, string | number | undefined | null>): string {
  const target = new URL(path.replace(/^\//, ""), API_ROOT);
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== "") target.searchParams.set(key, String(value));
  }
  return target.toString();
}

async function failure(response: Response): Promise<ApiError> {
  const text = await response.text();
  try {
    const problem = JSON.parse(text) as ProblemDocument;
    return new ApiError(response.status, problem.detail || problem.title, problem.errors ?? []);
  } catch {
    return new ApiError(response.status, text || `${response.status} ${response.statusText}`);
  }
}

/** A server with auth on (bound beyond loopback) wants a bearer token: kept for this browser tab only. */
const TOKEN_KEY = "concurrent.token";
export const getToken = (): string | null => sessionStorage.getItem(TOKEN_KEY);
export const setToken = (token: string | null): void => {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
};

async function send(method: string, path: string, init: RequestInit = {}, query?: Record<string, string | number | undefined | null>): Promise<Response> {
  const token = getToken();
  const headers = new Headers(init.headers);
  if (token) headers.set("Authorization", `Bearer ${token}`);
  let response: Response;
  try {
    response = await fetch(url(path, query), { method, ...init, headers });
  } catch (error) {
    throw new ApiError(0, `The Concurrent server cannot be reached (${String(error)}).`);
  }
  if (!response.ok && response.status !== 304) throw await failure(response);
  return response;
}

export async function getJson<T>(path: string, query?: Record<string, string | number | undefined | null>): Promise<T> {
  return (await send("GET", path, {}, query)).json() as Promise<T>;
}

export async function sendJson<T>(method: "POST" | "PUT" | "PATCH" | "DELETE", path: string, body?: unknown): Promise<T> {
  const init: RequestInit = body === undefined ? {} : { headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await send(method, path, init);
  return (response.status === 204 ? undefined : await response.json()) as T;
}

export async function sendText<T>(method: "POST" | "PUT", path: string, text: string, contentType = "application/yaml"): Promise<T> {
  const response = await send(method, path, { headers: { "Content-Type": contentType }, body: text });
  return (await response.json()) as T;
}

export async function getText(path: string, query?: Record<string, string | number | undefined | null>): Promise<string> {
  return (await send("GET", path, {}, query)).text();
}

/** A GET that sends If-None-Match; resolves to null when the server says 304 (nothing changed). */
export async function getIfChanged<T>(path: string, etag: string | null, query?: Record<string, string | number | undefined | null>): Promise<{ body: T; etag: string | null } | null> {
  const headers: Record<string, string> = etag ? { "If-None-Match": etag } : {};
  const response = await send("GET", path, { headers, cache: "no-store" }, query);
  if (response.status === 304) return null;
  return { body: (await response.json()) as T, etag: response.headers.get("ETag") };
}

/** Fetches a streaming text body (a following log), calling onChunk for each piece until it ends or is aborted. */
export async function streamText(path: string, query: Record<string, string | number | undefined | null>, onChunk: (text: string) => void, signal: AbortSignal): Promise<void> {
  const response = await send("GET", path, { signal }, query);
  const reader = response.body?.getReader();
  if (!reader) return;
  const decoder = new TextDecoder();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    onChunk(decoder.decode(value, { stream: true }));
  }
}
