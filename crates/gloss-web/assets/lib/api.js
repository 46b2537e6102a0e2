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

/** Sends a request with the session token; the reply, whatever its status. */
async function request(path, { method = "GET", body, timeoutMs = 10000, accept = "application/json" } = {}) {
  const headers = { Accept: accept };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  try {
    return await fetch(path, {
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
}

/** The error an unsuccessful reply stands for; `data` is its parsed JSON body, if any. */
function failure(reply, data) {
  // A proxy in front of a stopped coordinator answers 502-504: the same as no network.
  if ([502, 503, 504].includes(reply.status) && !(data && data.error)) {
    return new NetworkError(`server unavailable (${reply.status})`);
  }
  return new ApiError(reply.status, (data && data.error) || `HTTP ${reply.status}`, data && data.code);
}

/** The reply's JSON body; undefined when it has none or it does not parse. */
async function jsonOf(reply) {
  try {
    return await reply.json();
  } catch {
    return undefined;
  }
}

export async function api(path, options = {}) {
  const reply = await request(path, options);
  if (reply.status === 204) return null;
  const data = await jsonOf(reply);
  if (!reply.ok) throw failure(reply, data);
  if (data === undefined) throw new ApiError(reply.status, "the server sent an unreadable reply");
  return data;
}

/** The reply's body as a Blob (images), with the same errors as `api`. */
export async function apiBlob(path, options = {}) {
  const reply = await request(path, { timeoutMs: 30000, accept: "*/*", ...options });
  if (!reply.ok) throw failure(reply, await jsonOf(reply));
  try {
    return await reply.blob();
  } catch (e) {
    throw new NetworkError(`the image was cut off (${e.message})`);
  }
}

export const taskPath = (project, task) => `/api/tasks/${encodeURIComponent(project)}/${encodeURIComponent(task)}`;

/** A random id for answers and sessions (RFC 4122 v4 when the browser has it). */
export function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

// Images are fetched with the session token (an <img src> could not send it) and shown through
// object URLs, one per stored image: examples showing the same image share it, and examples
// prefetched while online still show theirs after the network goes. The oldest are revoked past
// IMAGE_CACHE; an <img> that already shows one keeps its picture.
const IMAGE_CACHE = 48;
const images = new Map(); // key -> Promise<object URL>, oldest first

/**
 * An object URL of the image of example `ex` (which has `seq` and, from the server, `image`) of
 * `task`. A failed fetch is forgotten, so the next call tries again.
 */
export function imageUrl(task, ex) {
  const key = ex.image && ex.image.digest ? ex.image.digest : `${task.project}/${task.name}/${ex.seq}`;
  const cached = images.get(key);
  if (cached) {
    images.delete(key);
    images.set(key, cached);
    return cached;
  }
  const url = apiBlob(`${taskPath(task.project, task.name)}/examples/${ex.seq}/image`).then((blob) => URL.createObjectURL(blob));
  url.catch(() => images.get(key) === url && images.delete(key));
  images.set(key, url);
  for (const [old, stale] of images) {
    if (images.size <= IMAGE_CACHE) break;
    images.delete(old);
    stale.then((u) => URL.revokeObjectURL(u), () => {});
  }
  return url;
}
