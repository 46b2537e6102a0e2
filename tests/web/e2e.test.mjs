// End-to-end tests of the web app in Debian's headless Chromium, driven by playwright-core,
// against a real `gloss up --demo` process (demo users alice and bob annotate, rita reviews,
// mona leads) whose single sign-on goes to a real OpenID Connect provider on loopback
// (tests/oidc/provider.mjs). Screenshots go to $GLOSS_E2E_ARTIFACTS (default ./artifacts).
//
// Run through tests/web/run.sh, which builds the binaries first.

import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";

const TARGET = process.env.CARGO_TARGET_DIR || join(process.env.HOME, ".cache/gloss-target");
const GLOSS = process.env.GLOSS_BIN || join(TARGET, "debug/gloss");
const GLOSSCTL = process.env.GLOSSCTL_BIN || join(TARGET, "debug/glossctl");
const ARTIFACTS = process.env.GLOSS_E2E_ARTIFACTS || join(process.cwd(), "artifacts");
const PASSWORD = "gloss-demo";
const CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"];

mkdirSync(ARTIFACTS, { recursive: true });

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

const OIDC_DIR = new URL("../oidc/", import.meta.url).pathname;

/** The test OpenID Connect provider (a child process) with Gloss's web client registered. */
class Provider {
  async start(redirect) {
    this.proc = spawn("node", [join(OIDC_DIR, "provider.mjs"), "--redirect", redirect], { stdio: ["ignore", "pipe", "inherit"] });
    this.issuer = await new Promise((resolve, reject) => {
      let out = "";
      this.proc.stdout.on("data", (d) => {
        out += d;
        const m = out.match(/^ready (\S+)/m);
        if (m) resolve(m[1]);
      });
      this.proc.once("exit", (code) => reject(new Error(`the OpenID provider exited (${code}): ${out}`)));
    });
  }

  stop() {
    this.proc?.kill("SIGTERM");
  }
}

/** A `gloss up --demo` process that can be stopped and started again on the same ports, with
 * single sign-on through `provider`. */
class Gloss {
  async init(provider) {
    this.dir = mkdtempSync(join(tmpdir(), "gloss-e2e-"));
    this.ports = { grpc: await freePort(), http: await freePort(), raft: await freePort() };
    this.base = `http://127.0.0.1:${this.ports.http}`;
    const redirect = `${this.base}/auth/oidc/callback`;
    await provider.start(redirect);
    writeFileSync(join(this.dir, "oidc-secret"), "gloss-web-secret-for-tests\n");
    this.config = join(this.dir, "gloss.toml");
    writeFileSync(
      this.config,
      [
        "[oidc]",
        `issuer = "${provider.issuer}"`,
        'client_id = "gloss-web"',
        `client_secret_file = "${join(this.dir, "oidc-secret")}"`,
        'cli_client_id = "gloss-cli"',
        `redirect_url = "${redirect}"`,
        'scopes = ["openid", "profile", "email", "groups"]',
        "[oidc.roles]",
        'labelers = ["annotator"]',
        'gloss-admins = ["admin"]',
        "",
      ].join("\n"),
    );
    await this.start();
  }

  async start() {
    const args = ["up", "--demo", "--config", this.config, "--data-dir", join(this.dir, "data"), "--listen", `127.0.0.1:${this.ports.grpc}`, "--http", `127.0.0.1:${this.ports.http}`, "--raft-listen", `127.0.0.1:${this.ports.raft}`];
    this.proc = spawn(GLOSS, args, { stdio: ["ignore", "pipe", "pipe"] });
    this.output = "";
    this.proc.stdout.on("data", (d) => (this.output += d));
    this.proc.stderr.on("data", (d) => (this.output += d));
    const deadline = Date.now() + 60000;
    while (!this.output.includes("press Ctrl-C to stop")) {
      if (this.proc.exitCode !== null) throw new Error(`gloss exited early:\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`gloss did not start:\n${this.output}`);
      await sleep(100);
    }
    // The demo users exist once the demo is loaded, which happens before the banner. The first
    // start prints the administrator's token once; glossctl signs its calls with it.
    while (!this.adminToken) {
      const m = this.output.match(/token \(shown once, keep it\):\s*\n\s*(\S+)/);
      if (m) this.adminToken = m[1];
      else if (Date.now() > deadline) throw new Error(`no administrator token printed:\n${this.output}`);
      else await sleep(100);
    }
  }

  async stop() {
    const exited = new Promise((r) => this.proc.once("exit", r));
    this.proc.kill("SIGTERM");
    await exited;
  }

  ctl(...args) {
    return execFileSync(GLOSSCTL, ["--server", `127.0.0.1:${this.ports.grpc}`, "--token", this.adminToken, ...args], { encoding: "utf8" });
  }

  /** The task's answers as exported by glossctl (Prodigy JSONL), one object per answer. */
  exportAnswers(task) {
    const out = this.ctl("task", "export", task, "-o", "-");
    return out.split("\n").filter(Boolean).map((l) => JSON.parse(l));
  }

  async api(user, method, path, body) {
    const s = await fetch(`${this.base}/api/session`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ user, password: PASSWORD }) });
    const { token } = await s.json();
    const r = await fetch(`${this.base}${path}`, { method, headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" }, body: body && JSON.stringify(body) });
    return r.json();
  }
}

const TOPICS = ["business", "sport", "local", "science", "weather", "culture", "health"];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let gloss;
let provider;
let browser;
const renderTimes = [];

before(async () => {
  gloss = new Gloss();
  provider = new Provider();
  await gloss.init(provider);
  // A classification task with enough examples for several sessions holding prefetched leases.
  const file = join(gloss.dir, "topics.jsonl");
  const lines = Array.from({ length: 60 }, (_, i) => JSON.stringify({ text: `Report ${i + 1}: ${TOPICS[i % TOPICS.length]} news of the day` }));
  writeFileSync(file, lines.join("\n") + "\n");
  gloss.ctl("dataset", "import", "demo/reports", file);
  gloss.ctl("task", "create", "demo/topics", "--dataset", "reports", "--interface", "choice", "--labels", TOPICS.join(","));
  // An entity-correction task with a teacher's suggestions on the first two headlines.
  gloss.ctl("task", "create", "demo/correct", "--dataset", "headlines", "--interface", "ner-correct", "--labels", "PERSON,ORG,LOC");
  const suggestions = join(gloss.dir, "suggestions.jsonl");
  writeFileSync(
    suggestions,
    [
      { seq: 1, spans: [{ start: 0, end: 12, label: "ORG" }], score: 0.9, source: "teacher" },
      { seq: 2, spans: [{ start: 0, end: 10, label: "LOC" }], score: 0.3, source: "teacher" },
    ]
      .map((x) => JSON.stringify(x))
      .join("\n"),
  );
  gloss.ctl("task", "suggest", "demo/correct", suggestions);
  // A binary task whose model accepts the first claim's label and rejects the second's.
  const claims = join(gloss.dir, "claims.jsonl");
  writeFileSync(claims, ["Win a free cruise today", "Minutes of Tuesday's meeting"].map((text) => JSON.stringify({ text, label: "spam" })).join("\n") + "\n");
  gloss.ctl("dataset", "import", "demo/claims", claims);
  gloss.ctl("task", "create", "demo/is-spam", "--dataset", "claims", "--interface", "binary", "--labels", "spam");
  const verdicts = join(gloss.dir, "verdicts.jsonl");
  writeFileSync(
    verdicts,
    [
      { seq: 1, labels: ["spam"], score: 0.8, source: "student" },
      { seq: 2, labels: [], score: 0.7, source: "student" },
    ]
      .map((x) => JSON.stringify(x))
      .join("\n"),
  );
  gloss.ctl("task", "suggest", "demo/is-spam", verdicts);
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_ARGS, headless: true });
});

after(async () => {
  if (browser) await browser.close();
  if (gloss) {
    await gloss.stop();
    rmSync(gloss.dir, { recursive: true, force: true });
  }
  provider?.stop();
  if (renderTimes.length) {
    const sorted = [...renderTimes].sort((a, b) => a - b);
    const q = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))].toFixed(1);
    console.log("\n| next example after a decision | samples | p50 ms | p95 ms | max ms |");
    console.log("|---|---|---|---|---|");
    console.log(`| key press to next example rendered | ${sorted.length} | ${q(0.5)} | ${q(0.95)} | ${sorted[sorted.length - 1].toFixed(1)} |`);
  }
});

async function signIn(user) {
  const ctx = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const page = await ctx.newPage();
  page.on("pageerror", (e) => console.error(`[${user}] page error: ${e.message}`));
  await page.goto(`${gloss.base}/app/tasks`);
  await page.fill("#user", user);
  await page.fill("#password", PASSWORD);
  await page.click("button[type=submit]");
  await page.waitForSelector("h2:text('Your tasks')");
  return { ctx, page };
}

async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** The seq of the example on screen, or null while none is. */
const currentSeq = (page) => page.evaluate(() => document.querySelector(".editor")?.dataset.seq ?? null);

/** Presses `keys` on the current example and waits for the next one; returns its seq. */
async function decide(page, ...keys) {
  const before = await currentSeq(page);
  assert.ok(before, "an example is on screen");
  const last = keys.pop();
  for (const k of keys) await page.keyboard.press(k);
  // Measure in the page: from the decisive key to the next example in the DOM.
  const waited = page.evaluate(
    (prev) =>
      new Promise((resolve) => {
        const t0 = performance.now();
        const check = () => {
          const seq = document.querySelector(".editor")?.dataset.seq ?? null;
          if (seq !== prev) resolve({ ms: performance.now() - t0, seq });
          else requestAnimationFrame(check);
        };
        requestAnimationFrame(check);
      }),
    before,
  );
  await page.keyboard.press(last);
  const { ms, seq } = await waited;
  renderTimes.push(ms);
  return seq;
}

async function pendingState(page) {
  return page.evaluate(() => ({ pending: Number(document.getElementById("net").dataset.pending), offline: document.getElementById("net").dataset.offline === "true", text: document.getElementById("net").textContent }));
}

test("a classification task by keyboard survives a network cut with every answer stored once", async () => {
  const { ctx, page } = await signIn("alice");
  await shot(page, "01-task-list");
  await page.click("tr[data-task='demo/topics'] a");
  await page.waitForSelector(".editor");
  const answered = [];
  for (const key of ["1", "2", "3"]) {
    answered.push(await currentSeq(page));
    await decide(page, key);
  }
  await page.waitForFunction(() => document.getElementById("net").dataset.pending === "0");

  // The network goes away: the app keeps serving prefetched examples and holds the answers.
  await ctx.route("**/api/**", (route) => route.abort("internetdisconnected"));
  for (const key of ["4", "5"]) {
    answered.push(await currentSeq(page));
    await decide(page, key);
  }
  await page.waitForFunction(() => document.getElementById("net").dataset.offline === "true");
  const offline = await pendingState(page);
  assert.equal(offline.pending, 2, offline.text);
  assert.match(offline.text, /offline/);
  await shot(page, "02-offline-pending");

  await ctx.unroute("**/api/**");
  await page.waitForFunction(() => document.getElementById("net").dataset.pending === "0", null, { timeout: 30000 });
  assert.match((await pendingState(page)).text, /all saved/);
  await shot(page, "03-saved-after-recovery");

  const rows = gloss.exportAnswers("demo/topics").filter((r) => r._annotator_id === "topics-alice");
  assert.equal(rows.length, answered.length, "every answer stored, none twice");
  assert.equal(new Set(rows.map((r) => r._input_hash)).size, answered.length);
  const progress = await gloss.api("mona", "GET", "/api/tasks/demo/topics/progress");
  assert.equal(progress.annotators.find((a) => a.annotator === "alice").answers, answered.length);
  await ctx.close();
});

test("answers made while the server is stopped are sent once it is back", async () => {
  const { ctx, page } = await signIn("bob");
  await page.click("tr[data-task='demo/topics'] a");
  await page.waitForSelector(".editor");
  await decide(page, "6");
  await page.waitForFunction(() => document.getElementById("net").dataset.pending === "0");
  await gloss.stop();
  await decide(page, "7");
  await decide(page, "1");
  await page.waitForFunction(() => document.getElementById("net").dataset.offline === "true");
  assert.equal((await pendingState(page)).pending, 2);
  await gloss.start();
  await page.waitForFunction(() => document.getElementById("net").dataset.pending === "0", null, { timeout: 30000 });
  const rows = gloss.exportAnswers("demo/topics").filter((r) => r._annotator_id === "topics-bob");
  assert.equal(rows.length, 3);
  assert.equal(new Set(rows.map((r) => r._input_hash)).size, 3);
  await ctx.close();
});

test("undo takes back the last answer, sent or not", async () => {
  const { ctx, page } = await signIn("alice");
  await page.click("tr[data-task='demo/topics'] a");
  await page.waitForSelector(".editor");
  const first = await currentSeq(page);
  await decide(page, "2");
  await page.waitForFunction(() => document.getElementById("net").dataset.pending === "0");
  await page.keyboard.press("Backspace");
  await page.waitForFunction((s) => document.querySelector(".editor")?.dataset.seq === s, first);
  // The withdrawn choice is shown again, then changed.
  assert.equal(await page.locator(".label.chosen").getAttribute("data-label"), "sport");
  await decide(page, "3");
  await page.waitForFunction(() => document.getElementById("net").dataset.pending === "0");
  const rows = gloss.exportAnswers("demo/topics").filter((r) => r._annotator_id === "topics-alice");
  assert.equal(rows.length, 6, "five from the first session and this one; the undone answer is gone");
  assert.equal(new Set(rows.map((r) => r._input_hash)).size, 6);
  assert.equal(rows.filter((r) => JSON.stringify(r.accept) === JSON.stringify(["sport"])).length, 1, "only the first session's sport answer");
  await ctx.close();
});

/** Labels tokens [from, to] of the current example by keyboard with label number `n`. */
async function keyboardSpan(page, from, to, n) {
  await page.keyboard.press("Escape");
  const cursor = await page.evaluate(() => Number(document.querySelector(".tok.cursor")?.dataset.i ?? 0));
  for (let i = cursor; i < from; i++) await page.keyboard.press("ArrowRight");
  for (let i = cursor; i > from; i--) await page.keyboard.press("ArrowLeft");
  if (cursor === from) {
    // Arrow keys start a selection; step off and back to select the token itself.
    await page.keyboard.press(from > 0 ? "ArrowLeft" : "ArrowRight");
    await page.keyboard.press(from > 0 ? "ArrowRight" : "ArrowLeft");
  }
  for (let i = from; i < to; i++) await page.keyboard.press("Shift+ArrowRight");
  await page.keyboard.press(String(n));
}

/** Labels tokens [from, to] by dragging the mouse across them with label number `n` active. */
async function mouseSpan(page, from, to, n) {
  await page.keyboard.press(String(n));
  const a = await page.locator(`.tok[data-i='${from}']`).boundingBox();
  const b = await page.locator(`.tok[data-i='${to}']`).boundingBox();
  await page.mouse.move(a.x + 2, a.y + a.height / 2);
  await page.mouse.down();
  await page.mouse.move(b.x + b.width - 2, b.y + b.height / 2, { steps: 5 });
  await page.mouse.up();
}

test("two annotators mark entities by keyboard and mouse, and a reviewer resolves their disagreement", async () => {
  const alice = await signIn("alice");
  const bob = await signIn("bob");
  for (const { page } of [alice, bob]) {
    await page.click("tr[data-task='demo/entities'] a");
    await page.waitForSelector(".editor .tok");
  }
  // Both get example 1 first: "Central bank holds interest rates steady for a third month".
  assert.equal(await currentSeq(alice.page), "1");
  assert.equal(await currentSeq(bob.page), "1");
  // Alice: "Central bank" as ORG, by keyboard.
  await keyboardSpan(alice.page, 0, 1, 2);
  const aliceSpans = await alice.page.locator("mark.span").allTextContents();
  assert.deepEqual(aliceSpans, ["Central bankORG"]);
  await shot(alice.page, "04-entity-keyboard");
  await decide(alice.page, "a");
  // Bob: "Central bank" as LOC, with the mouse; then removes a span by clicking and re-adds it.
  await mouseSpan(bob.page, 0, 1, 3);
  assert.deepEqual(await bob.page.locator("mark.span").allTextContents(), ["Central bankLOC"]);
  await bob.page.click("mark.span");
  assert.equal(await bob.page.locator("mark.span").count(), 0, "a click removes the span");
  await mouseSpan(bob.page, 0, 1, 3);
  await shot(bob.page, "05-entity-mouse");
  await decide(bob.page, "a");
  // Their second examples agree: "Local team wins the regional cup after a late penalty" -> no spans.
  await decide(alice.page, "a");
  await decide(bob.page, "a");
  for (const { page } of [alice, bob]) await page.waitForFunction(() => document.getElementById("net").dataset.pending === "0");

  const reviewer = await signIn("rita");
  await reviewer.page.click("tr[data-task='demo/entities'] a:text('review')");
  await reviewer.page.waitForSelector(".version");
  assert.equal(await reviewer.page.locator(".version").count(), 2, "both versions side by side");
  assert.equal(await reviewer.page.locator(".version .label.diff").count(), 2, "the differing spans are highlighted");
  await shot(reviewer.page, "06-review-side-by-side");
  // Pick Alice's version (the one listed with her name).
  const names = await reviewer.page.locator(".version strong").allTextContents();
  await reviewer.page.keyboard.press(String(names.indexOf("alice") + 1));
  await reviewer.page.waitForSelector("[data-testid=review-empty]");
  const gold = gloss.exportAnswers("demo/entities");
  assert.equal(gold.length, 4, "four answers recorded");
  const progress = await gloss.api("mona", "GET", "/api/tasks/demo/entities/progress");
  assert.equal(progress.review_pending, 0);
  assert.equal(progress.gold, 2, "one agreed, one reviewed");

  const lead = await signIn("mona");
  await lead.page.click("nav a:text('Dashboard')");
  await lead.page.waitForSelector(".task-dash[data-task='demo/entities'] svg.chart");
  await shot(lead.page, "07-dashboard");
  for (const s of [alice, bob, reviewer, lead]) await s.ctx.close();
});

test("a teacher's suggestions are shown distinctly, accepted as they are or corrected", async () => {
  const { ctx, page } = await signIn("alice");
  await page.click("tr[data-task='demo/correct'] a");
  await page.waitForSelector(".editor .tok");
  assert.equal(await currentSeq(page), "1");
  assert.deepEqual(await page.locator("mark.span.suggested").allTextContents(), ["Central bankORG"]);
  assert.match(await page.textContent(".editor"), /suggested by teacher \(confidence 0\.90\)/);
  await shot(page, "08-suggestion");
  await decide(page, "a");
  // The second suggestion is wrong: remove it with a click, mark the span as ORG by keyboard.
  assert.deepEqual(await page.locator("mark.span.suggested").allTextContents(), ["Local teamLOC"]);
  await page.click("mark.span");
  await keyboardSpan(page, 0, 1, 2);
  assert.equal(await page.locator("mark.span.suggested").count(), 0, "a corrected span is the annotator's own");
  await decide(page, "a");
  await page.waitForFunction(() => document.getElementById("net").dataset.pending === "0");
  const rows = gloss.exportAnswers("demo/correct").filter((r) => r._annotator_id === "correct-alice");
  const spans = rows.map((r) => r.spans.map((s) => `${s.start}-${s.end}:${s.label}`));
  assert.deepEqual(spans, [["0-12:ORG"], ["0-10:ORG"]]);
  await ctx.close();
});

test("a binary task shows whether the model accepts or rejects the proposed label", async () => {
  const { ctx, page } = await signIn("alice");
  await page.click("tr[data-task='demo/is-spam'] a");
  await page.waitForSelector(".editor .proposed");
  assert.equal(await page.textContent(".editor .proposed"), "spam");
  assert.equal(await currentSeq(page), "1");
  assert.equal(await page.textContent("[data-testid=suggestion]"), "suggested by student: accept (confidence 0.80)");
  await decide(page, "a");
  await page.waitForFunction(() => document.querySelector(".editor")?.dataset.seq === "2");
  assert.equal(await page.textContent("[data-testid=suggestion]"), "suggested by student: reject (confidence 0.70)");
  await decide(page, "x");
  await page.waitForFunction(() => document.getElementById("net").dataset.pending === "0");
  const rows = gloss.exportAnswers("demo/is-spam").filter((r) => r._annotator_id === "is-spam-alice");
  assert.deepEqual(rows.map((r) => r.answer), ["accept", "reject"]);
  await ctx.close();
});

test("relations are drawn by mouse and keyboard over pre-set spans, undone, and survive a network cut", async () => {
  const { ctx, page } = await signIn("alice");
  await page.click("tr[data-task='demo/relations'] a");
  await page.waitForSelector(".editor mark.span");
  // "Maria Lopes joined Northwind Labs in Porto as head of research." with its spans pre-set.
  assert.equal(await currentSeq(page), "1");
  assert.deepEqual(await page.locator("mark.span").allTextContents(), ["Maria LopesPERSON", "Northwind LabsORG", "PortoPLACE"]);
  await page.keyboard.press("r");
  await page.waitForSelector("[data-testid=mode][data-mode=relations]");
  // Mouse: head Maria Lopes, child Northwind Labs, 1 = WORKS_AT.
  await page.click("mark.span[data-span='0']");
  await page.click("mark.span[data-span='1']");
  assert.equal(await page.locator("mark.span.head").count(), 1);
  assert.equal(await page.locator("mark.span.child").count(), 1);
  await page.keyboard.press("1");
  await page.waitForSelector("svg.arcs path[data-arc]");
  // The network goes away while drawing; the rest is done by keyboard.
  await ctx.route("**/api/**", (route) => route.abort("internetdisconnected"));
  // The keyboard focus follows the last span picked: Northwind Labs.
  await page.keyboard.press("h");
  await page.keyboard.press("ArrowRight"); // Porto
  await page.keyboard.press("c");
  await page.keyboard.press("2"); // BASED_IN
  await page.waitForFunction(() => document.querySelectorAll("svg.arcs path[data-arc]").length === 2);
  await shot(page, "relations-arcs");
  // z takes back the last relation; drawing it again brings it back.
  await page.keyboard.press("z");
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=relations] .label").length === 1);
  await page.keyboard.press("h");
  await page.keyboard.press("ArrowLeft");
  await page.keyboard.press("ArrowRight");
  await page.keyboard.press("c");
  assert.equal(await page.locator("mark.span.head").count(), 1, "a head is picked");
  // Head and child are the same span: no relation to itself.
  await page.keyboard.press("2");
  assert.equal(await page.locator("[data-testid=relations] .label").count(), 1);
  await page.keyboard.press("Escape");
  await page.keyboard.press("ArrowLeft");
  await page.keyboard.press("h");
  await page.keyboard.press("ArrowRight");
  await page.keyboard.press("c");
  await page.keyboard.press("2");
  assert.deepEqual(await page.locator("[data-testid=relations] .label").allTextContents(), ["Maria Lopes → Northwind Labs · WORKS_AT ✕", "Northwind Labs → Porto · BASED_IN ✕"]);
  await decide(page, "a");
  await page.waitForFunction(() => document.getElementById("net").dataset.offline === "true");
  assert.equal((await pendingState(page)).pending, 1, "the answer waits in the outbox");
  await ctx.unroute("**/api/**");
  await page.waitForFunction(() => document.getElementById("net").dataset.pending === "0", null, { timeout: 30000 });
  const lines = gloss.exportAnswers("demo/relations");
  assert.equal(lines.length, 1, "stored once");
  const cover = (s) => Array.from(lines[0].text).slice(s.start, s.end).join("");
  const drawn = lines[0].relations.map((r) => `${cover(r.head_span)} ${r.label} ${cover(r.child_span)}`).sort();
  assert.deepEqual(drawn, ["Maria Lopes WORKS_AT Northwind Labs", "Northwind Labs BASED_IN Porto"]);
  await ctx.close();
});

/** Waits until the example's image is loaded and fitted; returns the stage's zoom. */
async function imageShown(page) {
  const stage = await page.waitForSelector(".editor [data-testid=image-stage][data-loaded=true][data-zoom]");
  return Number(await stage.getAttribute("data-zoom"));
}

const zoomOf = async (page) => Number(await page.getAttribute(".editor [data-testid=image-stage]", "data-zoom"));

/** Where the example's image is on screen (its top-left corner and screen pixels per image
 * pixel), and the part of it in view, in image pixels. */
function imagePlace(page) {
  return page.evaluate(() => {
    const img = document.querySelector(".editor [data-testid=image]");
    const r = img.getBoundingClientRect();
    const s = img.closest("[data-testid=image-stage]").getBoundingClientRect();
    const scale = r.width / img.naturalWidth;
    const seen = { left: Math.max(r.left, s.left, 0), top: Math.max(r.top, s.top, 0), right: Math.min(r.right, s.right, innerWidth), bottom: Math.min(r.bottom, s.bottom, innerHeight) };
    const image = (x, y) => ({ x: (x - r.left) / scale, y: (y - r.top) / scale });
    return { left: r.left, top: r.top, scale, seen: { from: image(seen.left, seen.top), to: image(seen.right, seen.bottom) } };
  });
}

/** Screen point (whole pixels) of image point `p`, and the image point that screen point is. */
function onScreen(place, p) {
  const x = Math.round(place.left + p.x * place.scale);
  const y = Math.round(place.top + p.y * place.scale);
  return { x, y, image: { x: (x - place.left) / place.scale, y: (y - place.top) / place.scale } };
}

/** Drags the mouse over the image from image point `from` to `to`; returns the box the drag
 * implies, in image pixels, once the editor shows it. */
async function dragOnImage(page, from, to) {
  const place = await imagePlace(page);
  const [a, b] = [onScreen(place, from), onScreen(place, to)];
  const count = await page.locator(".editor g.box[data-box]").count();
  await page.mouse.move(a.x, a.y);
  await page.mouse.down();
  await page.mouse.move(b.x, b.y, { steps: 5 });
  await page.mouse.up();
  await page.waitForFunction((n) => document.querySelectorAll(".editor g.box[data-box]").length === n, count + 1);
  const [p, q] = [a.image, b.image];
  return { x: Math.min(p.x, q.x), y: Math.min(p.y, q.y), width: Math.abs(q.x - p.x), height: Math.abs(q.y - p.y) };
}

async function clickOnImage(page, p) {
  const { x, y } = onScreen(await imagePlace(page), p);
  await page.mouse.click(x, y);
}

const boxLabels = (page) => page.locator(".editor g.box[data-box]").evaluateAll((gs) => gs.map((g) => g.dataset.label));

/** Each box's outline on screen, in image pixels by the image's place now: the overlay is
 * aligned when these are the boxes' own coordinates. */
async function drawnBoxes(page) {
  const place = await imagePlace(page);
  const rects = await page.locator(".editor g.box[data-box] rect.edge").evaluateAll((rs) => rs.map((r) => r.getBoundingClientRect().toJSON()));
  return rects.map((r) => ({ x: (r.left - place.left) / place.scale, y: (r.top - place.top) / place.scale, width: r.width / place.scale, height: r.height / place.scale }));
}

/** Asserts that box `got` is within `tolerance` image pixels of `want` on every side. */
function assertNear(got, want, tolerance, what) {
  for (const k of ["x", "y", "width", "height"]) {
    assert.ok(Math.abs(got[k] - want[k]) <= tolerance, `${what}: ${k} is ${got[k]}, want ${want[k].toFixed(2)} ±${tolerance} (${JSON.stringify(got)})`);
  }
}

/** The boxes of an exported image-boxes answer: Prodigy's image format writes each as a span
 * with its x, y, width and height in the image's pixels. */
const exportedBoxes = (row) => row.spans.map(({ x, y, width, height, label }) => ({ x, y, width, height, label }));

test("boxes are drawn on an image by mouse, labelled by key, undone, zoomed, and survive a network cut", async () => {
  const { ctx, page } = await signIn("alice");
  await page.click("tr[data-task='demo/shapes'] a");
  const fit = await imageShown(page);
  // The demo's shapes are 240 × 160 pixels; 1 = SQUARE, 2 = CIRCLE.
  assert.deepEqual(await page.$eval(".editor [data-testid=image]", (i) => [i.naturalWidth, i.naturalHeight]), [240, 160]);
  await page.keyboard.press("1");
  const square = await dragOnImage(page, { x: 20, y: 20 }, { x: 80, y: 70 });
  // The network goes away while drawing.
  await ctx.route("**/api/**", (route) => route.abort("internetdisconnected"));
  await page.keyboard.press("2");
  await dragOnImage(page, { x: 200, y: 140 }, { x: 130, y: 90 }); // from the bottom-right corner
  assert.deepEqual(await boxLabels(page), ["SQUARE", "CIRCLE"]);
  // A click selects the square; a number key relabels it; z takes that back, then the circle.
  await clickOnImage(page, { x: 50, y: 45 });
  await page.waitForSelector(".editor g.box.selected[data-box='0']");
  await page.keyboard.press("2");
  assert.deepEqual(await boxLabels(page), ["CIRCLE", "CIRCLE"]);
  await shot(page, "boxes-drawn");
  await page.keyboard.press("z");
  assert.deepEqual(await boxLabels(page), ["SQUARE", "CIRCLE"]);
  await page.keyboard.press("z");
  assert.deepEqual(await boxLabels(page), ["SQUARE"]);
  // A box selected with the arrow keys goes with Delete; a click beside the boxes draws nothing.
  await dragOnImage(page, { x: 150, y: 20 }, { x: 190, y: 50 });
  await page.keyboard.press("ArrowLeft");
  await page.waitForSelector(".editor g.box.selected[data-box='1']");
  await page.keyboard.press("Delete");
  await clickOnImage(page, { x: 220, y: 10 });
  assert.deepEqual(await boxLabels(page), ["SQUARE"]);

  // Zoomed in, a box is drawn in what is in view; it is stored in image pixels all the same.
  await page.keyboard.press("+");
  await page.keyboard.press("+");
  assert.ok((await zoomOf(page)) > fit * 1.5, `zoomed in from ${fit} to ${await zoomOf(page)}`);
  const { seen } = await imagePlace(page);
  const mid = { x: (seen.from.x + seen.to.x) / 2, y: (seen.from.y + seen.to.y) / 2 };
  const circle = await dragOnImage(page, { x: mid.x - 15, y: mid.y - 10 }, { x: mid.x + 15, y: mid.y + 10 });
  await shot(page, "boxes-zoomed");
  const aligned = async (what) => {
    const [a, b] = await drawnBoxes(page);
    assertNear(a, square, 1, `the square's outline ${what}`);
    assertNear(b, circle, 1, `the circle's outline ${what}`);
  };
  await aligned("zoomed in");
  await page.keyboard.press("-");
  assert.ok((await zoomOf(page)) < fit * 1.5);
  await aligned("zoomed out a step");
  await page.keyboard.press("0");
  assert.equal(await zoomOf(page), fit, "0 fits the image again");
  await aligned("fitted");
  assert.deepEqual(await boxLabels(page), ["SQUARE", "CIRCLE"]);

  await decide(page, "a");
  await page.waitForFunction(() => document.getElementById("net").dataset.offline === "true");
  assert.equal((await pendingState(page)).pending, 1, "the answer waits in the outbox");
  await ctx.unroute("**/api/**");
  await page.waitForFunction(() => document.getElementById("net").dataset.pending === "0", null, { timeout: 30000 });
  const rows = gloss.exportAnswers("demo/shapes").filter((r) => r._annotator_id === "shapes-alice");
  assert.equal(rows.length, 1, "stored once");
  const [storedSquare, storedCircle, ...more] = exportedBoxes(rows[0]);
  assert.equal(more.length, 0, JSON.stringify(rows[0].spans));
  assert.equal(storedSquare.label, "SQUARE");
  assert.equal(storedCircle.label, "CIRCLE");
  assertNear(storedSquare, square, 1, "the square drawn at the fitting zoom");
  assertNear(storedCircle, circle, 1, "the circle drawn zoomed in");
  await ctx.close();
});

test("an image is classified by keyboard, zoomed in and fitted again", async () => {
  const { ctx, page } = await signIn("alice");
  await page.click("tr[data-task='demo/shape-colour'] a");
  const fit = await imageShown(page);
  assert.deepEqual(await page.locator(".editor .label").evaluateAll((ls) => ls.map((l) => l.dataset.label)), ["RED", "GREEN", "BLUE"]);
  await page.keyboard.press("+");
  assert.ok((await zoomOf(page)) > fit);
  await page.keyboard.press("0");
  assert.equal(await zoomOf(page), fit);
  await shot(page, "image-choice");
  await decide(page, "2"); // GREEN, sent at once
  await imageShown(page);
  await decide(page, "x");
  await page.waitForFunction(() => document.getElementById("net").dataset.pending === "0");
  const rows = gloss.exportAnswers("demo/shape-colour").filter((r) => r._annotator_id === "shape-colour-alice");
  assert.deepEqual(rows.map((r) => r.answer), ["accept", "reject"]);
  assert.deepEqual(rows[0].accept, ["GREEN"]);
  await ctx.close();
});

test("the dashboard shows a task's jobs, its student's score and the curve job's learning curve", async () => {
  // A task whose gold records follow a code word; alice answers every example through the API.
  const file = join(gloss.dir, "codes.jsonl");
  const lines = Array.from({ length: 60 }, (_, i) => JSON.stringify({ text: `ticket ${i} filed under ${i % 2 ? "quintor" : "zorblax"}` }));
  writeFileSync(file, lines.join("\n") + "\n");
  gloss.ctl("dataset", "import", "demo/codes", file);
  gloss.ctl("task", "create", "demo/codes", "--dataset", "codes", "--interface", "choice", "--labels", "Z,Q");
  const login = await fetch(`${gloss.base}/api/session`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ user: "alice", password: PASSWORD }) });
  const { token } = await login.json();
  const call = (path, body) =>
    fetch(`${gloss.base}${path}`, { method: "POST", headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" }, body: JSON.stringify(body) }).then((r) => r.json());
  for (let left = 60; left > 0; ) {
    const { examples } = await call("/api/tasks/demo/codes/next", { count: 50 });
    for (const ex of examples) {
      const label = ex.text.includes("zorblax") ? "Z" : "Q";
      await call("/api/tasks/demo/codes/answers", { answer: { answer_id: `codes-${ex.seq}`, seq: ex.seq, decision: "DECISION_ACCEPT", choices: [label] } });
      left--;
    }
  }
  gloss.ctl("job", "submit", "train", "demo/codes", "--config", '{"epochs": 5, "patience": 5}', "--wait");
  gloss.ctl("job", "submit", "evaluate", "demo/codes", "--model", "demo/codes/tiny", "--wait");
  gloss.ctl("job", "submit", "curve", "demo/codes", "--config", '{"sizes": [10, 20], "epochs": 5, "patience": 5}', "--wait");
  const { ctx, page } = await signIn("mona");
  await page.click("nav a:text('Dashboard')");
  const dash = page.locator(".task-dash[data-task='demo/codes']");
  await dash.locator("[data-testid=models] svg.chart").first().waitFor();
  assert.match(await dash.locator("[data-testid=models]").textContent(), /demo\/codes\/tiny@1/);
  await dash.locator("[data-testid=curve] svg.chart").waitFor();
  assert.match(await dash.locator("[data-testid=curve]").textContent(), /student \(tiny\)/);
  assert.equal(await dash.locator("[data-testid=jobs] tr").count(), 4, "header and three jobs");
  assert.match(await dash.locator("[data-testid=jobs]").textContent(), /succeeded/);
  await dash.scrollIntoViewIfNeeded();
  await shot(page, "09-dashboard-models-and-jobs");
  await ctx.close();
});

/** Starts a single sign-on in a fresh browser as the provider's `user`; returns the page. */
async function signOn(user) {
  const ctx = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const page = await ctx.newPage();
  page.on("pageerror", (e) => console.error(`[sso ${user}] page error: ${e.message}`));
  await page.goto(`${gloss.base}/app/tasks`);
  await page.click("[data-testid=sso]");
  await page.waitForSelector("#login");
  assert.ok(page.url().startsWith(provider.issuer), `at the provider: ${page.url()}`);
  await page.fill("#login", user);
  await page.click("#submit");
  return { ctx, page };
}

test("single sign-on brings the provider's user into the app with the mapped role, and says why it refuses", async () => {
  // erin's group `labelers` maps to annotator.
  const { ctx, page } = await signOn("erin");
  await page.waitForSelector("h2:text('Your tasks')");
  assert.equal(new URL(page.url()).hash, "", "the session token does not stay in the address bar");
  assert.match(await page.textContent("#who"), /Erin Leaver/);
  await shot(page, "sso-signed-in");
  // The session survives a reload (the token is kept like a password sign-in's).
  await page.reload();
  await page.waitForSelector("h2:text('Your tasks')");
  await ctx.close();

  // carol's only group maps to no role; alice is a local demo user the provider's alice cannot take over.
  for (const [user, reason] of [
    ["carol", /no Gloss role/],
    ["alice", /not linked/],
  ]) {
    const { ctx, page } = await signOn(user);
    await page.waitForFunction(() => document.querySelector(".signin .error")?.textContent.length > 0);
    assert.match(await page.textContent(".signin .error"), reason);
    assert.ok(await page.isVisible("#password"), "the password form is still offered");
    await shot(page, `sso-refused-${user}`);
    await ctx.close();
  }
});
