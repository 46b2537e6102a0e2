// Calls to the coordinator's JSON API with the session token. A failed fetch (server down,
// network cut) throws NetworkError; an error reply throws ApiError with the status and the
// server's message.

import { NetworkError } from "./outbox.js";

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const TOKEN_KEY = "gloss.token";

export const session = {
  get token() {
    return localStorage.getItem(TOKEN_KEY) || "";
  },
  set token(v) {
    if (v) localStorage.setItem(TOKEN_KEY, v);
    else localStorage.removeItem(TOKEN_KEY);
  },
  user: null,
};

export async function api(path, { method = "GET", body, timeoutMs = 10000 } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  let reply;
  try {
    reply = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: ctl.signal,
    });
  } catch (e) {
    throw new NetworkError(`cannot reach the server (${e.message})`);
  } finally {
    clearTimeout(timer);
  }
  if (reply.status === 204) return null;
  let data = null;
  try {
    data = await reply.json();
  } catch {
    if (reply.ok) throw new ApiError(reply.status, "the server sent an unreadable reply");
  }
  if (!reply.ok) {
    // A proxy in front of a stopped coordinator answers 502-504: the same as no network.
    if ([502, 503, 504].includes(reply.status) && !(data && data.error)) {
      throw new NetworkError(`server unavailable (${reply.status})`);
    }
    throw new ApiError(reply.status, (data && data.error) || `HTTP ${reply.status}`, data && data.code);
  }
  return data;
}

export const taskPath = (project, task) => `/api/tasks/${encodeURIComponent(project)}/${encodeURIComponent(task)}`;

/** A random id for answers and sessions (RFC 4122 v4 when the browser has it). */
export function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
