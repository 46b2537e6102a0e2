// The answer outbox: nothing is lost, nothing is sent twice (run with `node --test`).
import assert from "node:assert/strict";
import { test } from "node:test";

import { NetworkError, Outbox } from "../../assets/lib/outbox.js";

class MemoryStorage {
  constructor() {
    this.data = new Map();
  }
  getItem(k) {
    return this.data.has(k) ? this.data.get(k) : null;
  }
  setItem(k, v) {
    this.data.set(k, String(v));
  }
}

/** A server that records what it stored, keyed by answer id, and can be switched off. */
function server() {
  const s = { up: true, stored: new Map(), calls: 0, refuse: new Set() };
  s.send = async (entry) => {
    s.calls++;
    if (!s.up) throw new NetworkError("connection refused");
    if (s.refuse.has(entry.id)) throw Object.assign(new Error("example 3: the lease expired and the example has all its answers"), { status: 409 });
    const duplicate = s.stored.has(entry.id);
    s.stored.set(entry.id, entry.body);
    return { duplicate };
  };
  return s;
}

const entry = (id) => ({ id, path: "/api/tasks/p/t/answers", body: { answer: { answer_id: id } } });

test("answers are kept in storage before they are sent and removed once stored", async () => {
  const storage = new MemoryStorage();
  const srv = server();
  const box = new Outbox(storage, "k", srv.send);
  box.add(entry("a"));
  box.add(entry("b"));
  assert.equal(JSON.parse(storage.getItem("k")).entries.length, 2, "persisted before any send");
  const r = await box.drain();
  assert.deepEqual(r, { sent: 2, refused: 0, offline: false });
  assert.deepEqual([...srv.stored.keys()], ["a", "b"], "in order");
  assert.equal(box.pending(), 0);
  assert.equal(JSON.parse(storage.getItem("k")).entries.length, 0);
});

test("a network failure keeps every answer, a reload finds them, and recovery sends each once", async () => {
  const storage = new MemoryStorage();
  const srv = server();
  srv.up = false;
  const box = new Outbox(storage, "k", srv.send);
  for (const id of ["a", "b", "c"]) box.add(entry(id));
  const r = await box.drain();
  assert.equal(r.offline, true);
  assert.equal(box.pending(), 3);
  // The tab is closed and reopened while offline.
  const reopened = new Outbox(storage, "k", srv.send);
  assert.equal(reopened.pending(), 3);
  srv.up = true;
  await reopened.drain();
  assert.deepEqual([...srv.stored.keys()], ["a", "b", "c"]);
  assert.equal(reopened.pending(), 0);
});

test("the same id is queued once, and concurrent drains share one pass", async () => {
  const srv = server();
  const box = new Outbox(new MemoryStorage(), "k", srv.send);
  box.add(entry("a"));
  box.add(entry("a"));
  assert.equal(box.pending(), 1);
  const [x, y] = await Promise.all([box.drain(), box.drain()]);
  assert.equal(x, y);
  assert.equal(srv.calls, 1);
});

test("a refused answer is set aside with the server's reason, and the rest still go", async () => {
  const srv = server();
  srv.refuse.add("b");
  const box = new Outbox(new MemoryStorage(), "k", srv.send);
  for (const id of ["a", "b", "c"]) box.add(entry(id));
  const r = await box.drain();
  assert.deepEqual(r, { sent: 2, refused: 1, offline: false });
  assert.equal(box.refused.length, 1);
  assert.match(box.refused[0].reason, /example 3/);
  box.dismissRefused();
  assert.equal(box.refused.length, 0);
});

test("server errors and expired sessions keep the answer for a later try", async () => {
  for (const status of [500, 503, 401]) {
    const box = new Outbox(new MemoryStorage(), "k", async () => {
      throw Object.assign(new Error("nope"), { status });
    });
    box.add(entry("a"));
    const r = await box.drain();
    assert.equal(r.offline, true, `status ${status}`);
    assert.equal(box.pending(), 1);
  }
});

test("undo takes back an answer that has not left yet", async () => {
  const srv = server();
  srv.up = false;
  const box = new Outbox(new MemoryStorage(), "k", srv.send);
  box.add(entry("a"));
  box.add(entry("b"));
  assert.equal(box.take("b"), true);
  assert.equal(box.take("zzz"), false);
  srv.up = true;
  await box.drain();
  assert.deepEqual([...srv.stored.keys()], ["a"]);
});

test("a corrupt stored outbox is kept aside, not silently overwritten", () => {
  const storage = new MemoryStorage();
  storage.setItem("k", "{not json");
  const box = new Outbox(storage, "k", async () => ({}));
  assert.equal(box.pending(), 0);
  const aside = [...storage.data.keys()].filter((k) => k.startsWith("k.corrupt."));
  assert.equal(aside.length, 1);
  assert.equal(storage.getItem(aside[0]), "{not json");
});
