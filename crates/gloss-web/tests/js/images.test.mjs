// Example images: fetched with the session token, one object URL per stored image, a failure
// not remembered (run with `node --test`).
import assert from "node:assert/strict";
import { test } from "node:test";

// api.js reads the session token from localStorage: a Map-backed stand-in, set before importing.
const store = new Map([["gloss.token", "glt_1_secret"]]);
globalThis.localStorage = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v), removeItem: (k) => store.delete(k) };
const { ApiError, imageUrl } = await import("../../assets/lib/api.js");
const { NetworkError } = await import("../../assets/lib/outbox.js");

const TASK = { project: "demo", name: "shapes" };
const PNG = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);

/** Replaces fetch with `reply(path, init)` and records each call. */
function server(reply) {
  const calls = [];
  globalThis.fetch = async (path, init) => {
    calls.push({ path, auth: init.headers.Authorization });
    return reply(path, init);
  };
  return calls;
}

const image = (digest) => ({ digest, media_type: "image/png", width: 240, height: 160, bytes: PNG.length, inline: false });

test("an image is fetched once with the session token, and examples showing it share its URL", async () => {
  const calls = server(() => new Response(PNG, { headers: { "Content-Type": "image/png" } }));
  const a = await imageUrl(TASK, { seq: 3, image: image("aa11") });
  const b = await imageUrl(TASK, { seq: 7, image: image("aa11") });
  assert.equal(a, b, "the same stored image, the same URL");
  assert.match(a, /^blob:/);
  assert.deepEqual(calls, [{ path: "/api/tasks/demo/shapes/examples/3/image", auth: "Bearer glt_1_secret" }]);
});

test("an example without image metadata is cached by its place", async () => {
  const calls = server(() => new Response(PNG));
  const a = await imageUrl(TASK, { seq: 4, image: null });
  assert.equal(await imageUrl(TASK, { seq: 4 }), a);
  assert.notEqual(await imageUrl({ project: "demo", name: "other" }, { seq: 4 }), a);
  assert.deepEqual(calls.map((c) => c.path), ["/api/tasks/demo/shapes/examples/4/image", "/api/tasks/demo/other/examples/4/image"]);
});

test("a failed fetch is not remembered: the next call asks again", async () => {
  let up = false;
  const calls = server(() => {
    if (!up) throw new TypeError("Failed to fetch");
    return new Response(PNG);
  });
  const ex = { seq: 5, image: image("bb22") };
  await assert.rejects(imageUrl(TASK, ex), NetworkError);
  up = true;
  assert.match(await imageUrl(TASK, ex), /^blob:/);
  assert.equal(calls.length, 2);
});

test("a refusal keeps the server's reason", async () => {
  server(() => new Response(JSON.stringify({ error: "example 9 not found", code: "NOT_FOUND" }), { status: 404 }));
  const err = await imageUrl(TASK, { seq: 9, image: image("cc33") }).catch((e) => e);
  assert.ok(err instanceof ApiError);
  assert.equal(err.status, 404);
  assert.equal(err.message, "example 9 not found");
});

test("past the cache's size the least recently used images are let go and fetched again when asked for", async () => {
  const calls = server(() => new Response(PNG));
  const fetched = (seq) => calls.filter((c) => c.path.endsWith(`/examples/${seq}/image`)).length;
  const first = await imageUrl(TASK, { seq: 1, image: image("first") });
  const kept = await imageUrl(TASK, { seq: 2, image: image("kept") });
  for (let i = 0; i < 60; i++) {
    await imageUrl(TASK, { seq: 100 + i, image: image(`d${i}`) });
    if (i === 30) assert.equal(await imageUrl(TASK, { seq: 2, image: image("kept") }), kept, "used again: now the newest");
  }
  const again = await imageUrl(TASK, { seq: 1, image: image("first") });
  assert.notEqual(again, first, "a new URL: the first was revoked");
  assert.equal(fetched(1), 2);
  assert.equal(await imageUrl(TASK, { seq: 2, image: image("kept") }), kept);
  assert.equal(fetched(2), 1);
});
