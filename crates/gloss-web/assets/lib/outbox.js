// The answer outbox: every answer is written to local storage before anything is sent, sent in
// order with its idempotency id, and removed only once the server has it. A network failure
// keeps it for the next drain; a refusal (4xx: the lease ran out and the example is full, for
// example) moves it to `refused` with the server's reason, shown to the annotator. Nothing is
// dropped silently.

export class NetworkError extends Error {}

export class Outbox {
  /**
   * @param storage something with getItem/setItem (window.localStorage, or a Map-backed fake)
   * @param key storage key (per user)
   * @param send async (entry) => reply; throws NetworkError when the server cannot be reached,
   *   or an error with `status` when it answered with a failure
   */
  constructor(storage, key, send) {
    this.storage = storage;
    this.key = key;
    this.send = send;
    this.draining = null;
    const saved = this.#load();
    this.entries = saved.entries;
    this.refused = saved.refused;
    this.listeners = new Set();
  }

  #load() {
    try {
      const v = JSON.parse(this.storage.getItem(this.key) || "null");
      if (v && Array.isArray(v.entries)) return { entries: v.entries, refused: v.refused || [] };
    } catch {
      // A corrupt entry is kept under another key for inspection, never silently replaced.
      this.storage.setItem(`${this.key}.corrupt.${Date.now()}`, this.storage.getItem(this.key));
    }
    return { entries: [], refused: [] };
  }

  #save() {
    this.storage.setItem(this.key, JSON.stringify({ entries: this.entries, refused: this.refused }));
    for (const f of this.listeners) f(this);
  }

  onChange(f) {
    this.listeners.add(f);
  }

  /** Queues an entry `{id, path, body}`; an id already queued is not queued twice. */
  add(entry) {
    if (!this.entries.some((e) => e.id === entry.id)) {
      this.entries.push({ ...entry, queuedAt: Date.now() });
      this.#save();
    }
  }

  /** Takes back an unsent entry (undo before it left); true when it was still here. */
  take(id) {
    const before = this.entries.length;
    if (this.draining && this.entries[0] && this.entries[0].id === id) return false;
    this.entries = this.entries.filter((e) => e.id !== id);
    if (this.entries.length !== before) {
      this.#save();
      return true;
    }
    return false;
  }

  pending() {
    return this.entries.length;
  }

  has(predicate) {
    return this.entries.some(predicate);
  }

  /**
   * Sends queued entries in order until the outbox is empty or the network fails. Returns
   * {sent, refused, offline}. Concurrent calls share one drain.
   */
  drain() {
    if (!this.draining) {
      this.draining = this.#drain().finally(() => {
        this.draining = null;
      });
    }
    return this.draining;
  }

  async #drain() {
    let sent = 0;
    let refused = 0;
    while (this.entries.length > 0) {
      const entry = this.entries[0];
      try {
        await this.send(entry);
        sent++;
      } catch (e) {
        if (e instanceof NetworkError || !e.status || e.status >= 500 || e.status === 401) {
          return { sent, refused, offline: true, error: e };
        }
        this.refused.push({ ...entry, reason: e.message, status: e.status });
        refused++;
      }
      this.entries.shift();
      this.#save();
    }
    return { sent, refused, offline: false };
  }

  dismissRefused() {
    this.refused = [];
    this.#save();
  }
}
