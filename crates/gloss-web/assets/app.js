// The Gloss web app: sign-in, the annotator's task list and queue, the reviewer's queue and the
// project lead's dashboard. One page, no framework, no build step; every answer goes through
// the outbox so none is lost when the network or a coordinator goes away.

import { api, ApiError, imageUrl, newId, session, taskPath } from "./lib/api.js";
import * as B from "./lib/boxes.js";
import { barChart, lineChart } from "./lib/chart.js";
import { Editor, labelClass, isImageTask, isSpanTask } from "./lib/editor.js";
import { ImageStage } from "./lib/image.js";
import { NetworkError, Outbox } from "./lib/outbox.js";
import * as S from "./lib/spans.js";
import { fmtRate, h, mount, progressBar } from "./lib/views.js";

const main = document.getElementById("main");
const netEl = document.getElementById("net");
/** How many examples the annotator holds: the one on screen plus the prefetched ones. */
const PREFETCH = 5;

let outbox = null;
let keyHandler = null;
let leaveView = () => {};
const net = { offline: false, retryMs: 1000, timer: null };

document.addEventListener("keydown", (e) => {
  const typing = e.target && ["INPUT", "TEXTAREA", "SELECT"].includes(e.target.tagName);
  if (keyHandler && !typing && !e.ctrlKey && !e.metaKey && !e.altKey && keyHandler(e)) e.preventDefault();
});
window.addEventListener("popstate", route);
window.addEventListener("online", () => drainNow());

function go(path) {
  history.pushState({}, "", path);
  route();
}

function link(path, ...children) {
  return h("a", { href: path, onclick: (e) => (e.preventDefault(), go(path)) }, ...children);
}

// ---- outbox and the saved/pending indicator ----

function showNet() {
  if (!outbox) return (netEl.textContent = "");
  const n = outbox.pending();
  if (net.offline) {
    netEl.className = "net offline";
    netEl.textContent = `offline · ${n} pending`;
  } else if (n > 0) {
    netEl.className = "net pending";
    netEl.textContent = `saving · ${n} pending`;
  } else {
    netEl.className = "net saved";
    netEl.textContent = "all saved";
  }
  netEl.dataset.pending = String(n);
  netEl.dataset.offline = String(net.offline);
}

function startOutbox() {
  outbox = new Outbox(localStorage, `gloss.outbox.${session.user.name}`, (entry) =>
    api(entry.path, { method: "POST", body: entry.body }),
  );
  outbox.onChange(showNet);
  showNet();
  drainNow();
}

async function drainNow() {
  if (!outbox) return;
  clearTimeout(net.timer);
  const r = await outbox.drain();
  net.offline = r.offline;
  showNet();
  if (r.refused) document.dispatchEvent(new CustomEvent("gloss:refused"));
  if (r.offline) {
    net.timer = setTimeout(drainNow, net.retryMs);
    net.retryMs = Math.min(net.retryMs * 2, 8000);
  } else {
    net.retryMs = 1000;
  }
  document.dispatchEvent(new CustomEvent("gloss:drained", { detail: r }));
}

function refusedNotice() {
  if (!outbox || outbox.refused.length === 0) return null;
  return h(
    "div",
    { class: "notice bad", "data-testid": "refused" },
    h("strong", {}, `${outbox.refused.length} answer(s) were not accepted: `),
    outbox.refused.map((r) => h("div", {}, `example ${r.body.answer ? r.body.answer.seq : "?"}: ${r.reason}`)),
    h("button", { onclick: () => (outbox.dismissRefused(), route()) }, "Dismiss"),
  );
}

// ---- sign-in and navigation ----

function signInView(message) {
  leaveView();
  keyHandler = null;
  document.getElementById("nav").replaceChildren();
  document.getElementById("who").textContent = "";
  const user = h("input", { id: "user", name: "user", autocomplete: "username", autofocus: true });
  const password = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password" });
  const token = h("input", { id: "token", name: "token", autocomplete: "off", placeholder: "glt_…" });
  const err = h("p", { class: "error", role: "alert" }, message || "");
  const submit = async (e) => {
    e.preventDefault();
    err.textContent = "";
    try {
      const body = token.value.trim() ? { token: token.value.trim() } : { user: user.value.trim(), password: password.value };
      const r = await api("/api/session", { method: "POST", body });
      session.token = r.token;
      session.user = r.user;
      localStorage.setItem("gloss.user", JSON.stringify(r.user));
      startOutbox();
      go(location.pathname.startsWith("/app/") && location.pathname !== "/app/signin" ? location.pathname : "/app/tasks");
    } catch (x) {
      err.textContent = x.message;
    }
  };
  // Single sign-on, when the cluster has it: the server sends the browser to the company's
  // identity provider and back (see /auth/oidc/login).
  const sso = h("p", { class: "sso", hidden: true }, h("a", { class: "btn primary", href: "/auth/oidc/login", "data-testid": "sso" }, "Sign in with single sign-on"));
  api("/api/session/options")
    .then((o) => {
      if (o.sso) sso.hidden = false;
    })
    .catch(() => {});
  mount(
    main,
    h(
      "form",
      { class: "signin card", onsubmit: submit },
      h("h2", {}, "Sign in to Gloss"),
      sso,
      h("label", { for: "user" }, "User name"),
      user,
      h("label", { for: "password" }, "Password"),
      password,
      h("p", { class: "muted" }, "or paste a token issued by your administrator:"),
      token,
      h("p", {}, h("button", { class: "primary", type: "submit" }, "Sign in")),
      err,
    ),
  );
}

function navBar(active) {
  const roles = session.user.roles || [];
  const has = (r) => roles.includes(r) || roles.includes("admin");
  const item = (path, name) => {
    const a = link(path, name);
    if (active === name) a.className = "active";
    return a;
  };
  mount(document.getElementById("nav"), item("/app/tasks", "Tasks"), has("manager") ? item("/app/dashboard", "Dashboard") : null);
  mount(
    document.getElementById("who"),
    `${session.user.display_name} `,
    h("button", {
      onclick: async () => {
        try {
          await api("/api/session", { method: "DELETE" });
        } catch {
          // Signing out locally still works when the server is away.
        }
        session.token = "";
        signInView("Signed out.");
      },
    }, "Sign out"),
  );
}

async function route() {
  leaveView();
  leaveView = () => {};
  keyHandler = null;
  if (!session.token || !session.user) return signInView();
  const parts = location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  try {
    if (parts[1] === "annotate" && parts.length === 4) return await annotateView(parts[2], parts[3]);
    if (parts[1] === "review" && parts.length === 4) return await reviewView(parts[2], parts[3]);
    if (parts[1] === "dashboard") return await dashboardView();
    return await tasksView();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      session.token = "";
      return signInView(e.message);
    }
    mount(main, h("div", { class: "card error", role: "alert" }, e.message), h("button", { onclick: route }, "Retry"));
  }
}

// ---- task list ----

async function tasksView() {
  navBar("Tasks");
  const { tasks } = await api("/api/tasks");
  const rows = tasks.map((t) => {
    const p = t.progress;
    const mine = p.mine ? p.mine.answers : 0;
    const path = `${encodeURIComponent(t.project)}/${encodeURIComponent(t.name)}`;
    return h(
      "tr",
      { class: "task-row", "data-task": `${t.project}/${t.name}` },
      h("td", {}, t.can_annotate ? link(`/app/annotate/${path}`, `${t.project}/${t.name}`) : `${t.project}/${t.name}`),
      h("td", {}, t.interface.replace("INTERFACE_", "").toLowerCase().replace("_", "-")),
      h("td", {}, progressBar(p.done, p.total), h("span", { class: "muted" }, ` ${p.done} / ${p.total} done`)),
      h("td", {}, `${mine} by you`),
      h("td", {}, t.can_review ? link(`/app/review/${path}`, `review (${p.review_pending})`) : ""),
    );
  });
  mount(
    main,
    refusedNotice(),
    h(
      "div",
      { class: "card" },
      h("h2", {}, "Your tasks"),
      tasks.length
        ? h("table", {}, h("tr", {}, h("th", {}, "Task"), h("th", {}, "Interface"), h("th", {}, "Progress"), h("th", {}, "Yours"), h("th", {}, "")), rows)
        : h("p", { class: "muted" }, "No task lists you yet. Ask your project lead to add you to a task's pool."),
    ),
  );
}

// ---- annotation ----

async function annotateView(project, name) {
  navBar("Tasks");
  const base = taskPath(project, name);
  const task = await api(base);
  const sessionId = sessionStorage.getItem("gloss.session") || newId();
  sessionStorage.setItem("gloss.session", sessionId);
  const st = {
    queue: [],
    done: new Set(), // seqs answered here (sent or still in the outbox)
    history: [], // [{entry, example}] for undo
    editor: null,
    shownAt: 0,
    exhausted: false,
    fetching: false,
    stats: { count: 0, first: 0 },
    notice: "",
    alive: true,
  };
  const card = h("div", { class: "card", "data-testid": "annotate" });
  const header = h("div", { class: "meta" });
  const body = h("div");
  const foot = h("div");
  mount(main, h("div", { id: "refused" }, refusedNotice()), card);
  mount(card, h("h2", {}, `${project}/${name}`), header, body, foot);

  const pendingHere = () => outbox.entries.filter((e) => e.path === `${base}/answers`).length;

  async function refill() {
    if (st.fetching || !st.alive || st.queue.length >= PREFETCH) return;
    st.fetching = true;
    try {
      const r = await api(`${base}/next`, { method: "POST", body: { count: PREFETCH + pendingHere(), session_id: sessionId } });
      const have = new Set(st.queue.map((x) => x.seq));
      for (const ex of r.examples) {
        if (have.has(ex.seq) || st.done.has(ex.seq)) continue;
        st.queue.push(ex);
        // Images come with the lease, so the examples held can be done offline too.
        if (ex.image) imageUrl(task, ex).catch(() => {});
      }
      st.exhausted = r.exhausted && st.queue.length === 0;
      st.notice = "";
    } catch (e) {
      if (!(e instanceof NetworkError)) st.notice = e.message;
    } finally {
      st.fetching = false;
    }
    if (!st.editor) show();
    else renderMeta();
  }

  function renderMeta() {
    const mins = st.stats.first ? (Date.now() - st.stats.first) / 3600000 : 0;
    const rate = mins > 0 ? st.stats.count / mins : 0;
    mount(
      header,
      h("span", { "data-testid": "done" }, `${st.stats.count} done this session`),
      h("span", {}, st.stats.count > 1 ? fmtRate(rate) : ""),
      h("span", {}, `${st.queue.length} ready`),
      st.editor ? h("span", {}, `example #${st.editor.ex.seq}`) : null,
    );
  }

  function show() {
    const ex = st.queue[0];
    if (!ex) {
      st.editor = null;
      const text = st.exhausted
        ? "Nothing left for you in this task. Thank you!"
        : net.offline
          ? "Offline: waiting for the server to hand out more examples. Your answers are kept."
          : "Loading the next example…";
      mount(body, h("p", { class: st.exhausted ? "" : "muted", "data-testid": st.exhausted ? "exhausted" : "waiting" }, text));
      mount(foot, st.notice ? h("p", { class: "error" }, st.notice) : null);
      renderMeta();
      return;
    }
    st.editor = new Editor(task, ex, decide);
    st.shownAt = performance.now();
    mount(body, st.editor.el);
    mount(
      foot,
      h(
        "div",
        { class: "actions" },
        h("button", { class: "accept", onclick: () => st.editor.decide("DECISION_ACCEPT") }, "Accept ", h("kbd", {}, "a")),
        h("button", { class: "reject", onclick: () => st.editor.decide("DECISION_REJECT") }, "Reject ", h("kbd", {}, "x")),
        h("button", { onclick: () => st.editor.decide("DECISION_IGNORE") }, "Ignore ", h("kbd", {}, "space")),
        h("button", { onclick: undo }, "Undo ", h("kbd", {}, "⌫")),
      ),
      st.notice ? h("p", { class: "error" }, st.notice) : null,
      h("p", { class: "keys" }, keysHelp(task)),
    );
    renderMeta();
  }

  function decide(decision, parts) {
    const ex = st.queue[0];
    if (!ex) return;
    const answer = {
      answer_id: newId(),
      seq: ex.seq,
      session_id: sessionId,
      decision,
      label: parts.label,
      choices: parts.choices,
      spans: parts.spans,
      relations: parts.relations,
      boxes: parts.boxes,
      time_spent_ms: Math.round(performance.now() - st.shownAt),
    };
    const entry = { id: answer.answer_id, path: `${base}/answers`, body: { answer } };
    outbox.add(entry);
    st.done.add(ex.seq);
    st.history.push({ entry, example: ex });
    st.queue.shift();
    st.stats.count++;
    if (!st.stats.first) st.stats.first = Date.now();
    show();
    drainNow();
    refill();
  }

  async function undo() {
    const last = st.history.pop();
    if (!last) return;
    const seq = last.example.seq;
    if (outbox.take(last.entry.id)) {
      st.done.delete(seq);
      st.queue.unshift({ ...last.example, previous: last.entry.body.answer });
    } else {
      try {
        const r = await api(`${base}/undo`, { method: "POST", body: { seq } });
        st.done.delete(seq);
        st.queue.unshift(r.example);
      } catch (e) {
        st.history.push(last);
        st.notice = `cannot undo example ${seq}: ${e.message}`;
      }
    }
    st.stats.count = Math.max(0, st.stats.count - 1);
    show();
  }

  keyHandler = (e) => {
    // The editor goes first: Backspace removes a selected box there, and undoes the last
    // answer here otherwise.
    if (st.editor && st.editor.key(e)) return true;
    if (e.key === "Backspace") {
      undo();
      return true;
    }
    return false;
  };

  // Leases are kept alive while the tab is visible; a hidden tab lets them lapse so the
  // examples go back to the queue for others.
  const beat = setInterval(() => {
    if (document.visibilityState === "visible" && st.queue.length) api(`${base}/heartbeat`, { method: "POST" }).catch(() => {});
  }, Math.max(2000, (task.lease_ttl_ms || 30000) / 3));
  const poll = setInterval(refill, 3000);
  const onDrained = () => {
    mount(document.getElementById("refused") || h("div"), refusedNotice());
    if (!st.editor) show();
  };
  document.addEventListener("gloss:drained", onDrained);
  leaveView = () => {
    st.alive = false;
    clearInterval(beat);
    clearInterval(poll);
    document.removeEventListener("gloss:drained", onDrained);
  };
  show();
  await refill();
}

function keysHelp(task) {
  if (task.interface === "INTERFACE_IMAGE_BOXES")
    return "1-9 pick a label, then drag on the image to draw a box · click a box or ←/→ to select it, 1-9 relabels it, Delete removes it · z takes back a change · + / - zoom, 0 fits · a/Enter accept · x reject · space ignore · backspace undo";
  if (task.interface === "INTERFACE_IMAGE_CHOICE") return "1-9 choose and submit · + / - zoom, 0 fits · x reject · space ignore · backspace undo";
  if (task.interface === "INTERFACE_BINARY") return "a accept · x reject · space ignore · backspace undo";
  if (task.interface === "INTERFACE_RELATIONS")
    return "spans: 1-9 pick a label, then select text · r relation mode: click or arrows+h the head, click or arrows+c the child, 1-9 names the relation · z takes back a change · a/Enter accept · x reject · space ignore · backspace undo";
  if (isSpanTask(task))
    return "1-9 pick a label, then select text with the mouse · or arrows move, shift+arrows extend, 1-9 labels the selection · click or Delete removes a span · a/Enter accept · x reject · space ignore · backspace undo";
  if (task.interface === "INTERFACE_MULTI_CHOICE") return "1-9 toggle a label · a/Enter accept · x reject · space ignore · backspace undo";
  return "1-9 choose and submit · x reject · space ignore · backspace undo";
}

// ---- review ----

async function reviewView(project, name) {
  navBar("Tasks");
  const base = taskPath(project, name);
  const card = h("div", { class: "card", "data-testid": "review" });
  mount(main, card);
  let items = [];
  let pending = 0;
  let idx = 0;
  let task = null;
  let editing = null;
  let message = "";

  async function load() {
    const r = await api(`${base}/review?limit=50`);
    items = r.items;
    pending = r.pending;
    task = r.task;
    idx = Math.min(idx, Math.max(0, items.length - 1));
  }

  /** The example's image, only shown, with `boxes` over it (`diff`: the indices to mark). */
  function imageView(it, boxes = [], diff = null) {
    const stage = new ImageStage({ load: () => imageUrl(task, it), size: it.image, classOf: (l) => labelClass(task, l), maxHeight: 320 });
    stage.draw(boxes, { diff });
    return stage.el;
  }

  /** What the versions are about: the text, or the image and its caption. Image-boxes versions
   * each show the image with their own boxes instead. */
  function exampleView(it) {
    if (!isImageTask(task)) return h("div", { class: "example" }, it.text);
    return [it.text ? h("p", { class: "caption" }, it.text) : null, task.interface === "INTERFACE_IMAGE_CHOICE" ? imageView(it) : null];
  }

  function versionView(a, i, diff) {
    const spans = (a.spans || []).map((s) =>
      h("span", { class: `label ${labelClass(task, s.label)}${diff.spans[i].has(S.spanKey(s)) ? " diff" : ""}` }, `${s.text || S.sliceCodePoints(items[idx].text, s.start, s.end)} · ${s.label}`),
    );
    const choices = (a.choices || []).map((c) => h("span", { class: `label ${labelClass(task, c)}${diff.choices[i].has(c) ? " diff" : ""}` }, c));
    const spanName = (k) => {
      const s = (a.spans || [])[k];
      return s ? s.text || S.sliceCodePoints(items[idx].text, s.start, s.end) : "?";
    };
    const relations = (a.relations || []).map((r) =>
      h("span", { class: `label rel${diff.relations[i].has(S.relationKey(a, r)) ? " diff" : ""}` }, `${spanName(r.head)} → ${spanName(r.child)} · ${r.label}`),
    );
    const boxes = (a.boxes || []).map((b, k) =>
      h("span", { class: `label ${labelClass(task, b.label)}${diff.boxes[i].has(k) ? " diff" : ""}`, "data-box": k }, `${b.label} ${B.boxSize(b)}`),
    );
    return h(
      "div",
      { class: "version", "data-answer": a.answer_id },
      h("div", { class: "meta" }, h("kbd", {}, String(i + 1)), h("strong", {}, a.annotator)),
      h("div", { class: `decision${diff.decisionsDiffer ? " diff" : ""}` }, a.decision.replace("DECISION_", "").toLowerCase(), a.label ? ` ${a.label}` : ""),
      h("div", { class: "labels" }, choices, spans, boxes),
      relations.length ? h("div", { class: "labels", "data-testid": "relations" }, relations) : null,
      task.interface === "INTERFACE_IMAGE_BOXES" ? imageView(items[idx], a.boxes, diff.boxes[i]) : null,
    );
  }

  function render() {
    if (items.length === 0) {
      mount(card, h("h2", {}, `Review ${project}/${name}`), h("p", { "data-testid": "review-empty" }, "No disagreements waiting."));
      return;
    }
    const it = items[idx];
    const diff = { ...S.differences(it.answers), boxes: B.unmatchedBoxes(it.answers) };
    const parts = [
      h("h2", {}, `Review ${project}/${name}`),
      h("div", { class: "meta" }, h("span", {}, `${idx + 1} of ${items.length} shown · ${pending} pending`), h("span", {}, `example #${it.seq}`), it.disputed_labels.length ? h("span", {}, `disputed: ${it.disputed_labels.join(", ")}`) : null),
    ];
    if (editing) {
      parts.push(editing.el, h("p", { class: "keys" }, "edit, then a/Enter saves your version as gold · Escape cancels"));
    } else {
      parts.push(exampleView(it), h("div", { class: "side" }, it.answers.map((a, i) => versionView(a, i, diff))));
      parts.push(h("p", { class: "keys" }, "1-9 pick that version as gold · e edit · j/k next/previous"));
    }
    if (message) parts.push(h("p", { class: "error", role: "alert" }, message));
    mount(card, parts);
  }

  async function resolve(body) {
    const it = items[idx];
    try {
      await api(`${base}/review/${it.seq}`, { method: "POST", body });
      message = "";
      editing = null;
      await load();
    } catch (e) {
      message = e.message;
    }
    render();
  }

  keyHandler = (e) => {
    if (!items.length) return false;
    if (editing) {
      if (e.key === "Escape") {
        editing = null;
        render();
        return true;
      }
      return editing.key(e);
    }
    const it = items[idx];
    if (/^[1-9]$/.test(e.key) && it.answers[Number(e.key) - 1]) {
      resolve({ answer_id: it.answers[Number(e.key) - 1].answer_id });
      return true;
    }
    if (e.key === "e") {
      const ex = { seq: it.seq, text: it.text, tokens: it.tokens, image: it.image };
      editing = new Editor(task, ex, (decision, p) => resolve({ edited: { decision, label: p.label, choices: p.choices, spans: p.spans, relations: p.relations, boxes: p.boxes } }), it.answers[0]);
      render();
      return true;
    }
    if (e.key === "j" || e.key === "k") {
      idx = Math.max(0, Math.min(items.length - 1, idx + (e.key === "j" ? 1 : -1)));
      render();
      return true;
    }
    return false;
  };
  await load();
  render();
}

// ---- dashboard ----

async function dashboardView() {
  navBar("Dashboard");
  const { projects } = await api("/api/dashboard");
  const fmt = (v) => (v === undefined || v === null ? "n/a" : v.toFixed(3));
  const cards = projects.map((p) =>
    h(
      "div",
      { class: "card", "data-project": p.project.name },
      h("h2", {}, p.project.name),
      p.project.description ? h("p", { class: "muted" }, p.project.description) : null,
      p.tasks.length ? null : h("p", { class: "muted" }, "No tasks yet."),
      p.tasks.map(({ task, progress, agreement, evaluations, models, jobs, curve }) => {
        const o = agreement.overall || {};
        const metric = (l) => l.krippendorff_alpha ?? l.span_f1 ?? l.percent_agreement ?? null;
        return h(
          "div",
          { class: "task-dash", "data-task": `${task.project}/${task.name}` },
          h("h3", {}, `${task.name} `, h("span", { class: "muted" }, task.interface.replace("INTERFACE_", "").toLowerCase(), task.state === "TASK_STATE_CLOSED" ? " · closed" : "")),
          h(
            "div",
            { class: "stats" },
            progressBar(progress.done, progress.total),
            h("span", {}, `${progress.done} / ${progress.total} done`),
            h("span", {}, `${progress.in_progress} in progress`),
            h("span", {}, `${progress.remaining} remaining`),
            h("span", {}, `${progress.answers} answers · ${fmtRate(progress.answers_per_hour)}`),
            h("span", { "data-testid": "review-pending" }, `${progress.review_pending} to review`),
            h("span", {}, `${progress.gold} gold`),
          ),
          h(
            "div",
            { class: "grid2" },
            h(
              "table",
              {},
              h("tr", {}, h("th", {}, "Annotator"), h("th", {}, "Answers"), h("th", {}, "In progress"), h("th", {}, "Speed"), h("th", {}, "Last seen")),
              progress.annotators.map((a) =>
                h("tr", {}, h("td", {}, a.annotator), h("td", {}, a.answers), h("td", {}, a.in_progress), h("td", {}, fmtRate(a.answers_per_hour)), h("td", {}, a.last_seen_ms ? new Date(a.last_seen_ms).toLocaleTimeString() : "")),
              ),
            ),
            h(
              "div",
              {},
              h("p", { class: "muted" }, `agreement over ${o.items || 0} items by ${agreement.annotators} annotators: percent ${fmt(o.percent_agreement)}, Krippendorff's alpha ${fmt(o.krippendorff_alpha)}${o.cohen_kappa != null ? `, Cohen's kappa ${fmt(o.cohen_kappa)}` : ""}${o.span_f1 != null ? `, span F1 ${fmt(o.span_f1)}` : ""}`),
              agreement.labels.length ? barChart(agreement.labels.map((l) => ({ label: l.label, value: metric(l), note: `(${l.items})` })), { title: "agreement per label" }) : null,
            ),
          ),
          modelsView(evaluations, models, curve),
          jobsView(jobs),
        );
      }),
    ),
  );
  mount(main, cards.length ? cards : h("p", { class: "muted" }, "No projects yet."));
}

/** A `curve` job's result as a line chart: the student's test score by gold records trained
 * on, and a flat line per evaluated teacher across the same range. */
function curveChart(curve) {
  const points = curve.points.map((p) => [p.examples, p.score]);
  if (!points.length) return null;
  const [first, last] = [points[0][0], points[points.length - 1][0]];
  return h(
    "div",
    { "data-testid": "curve" },
    lineChart(
      [{ name: `student (${curve.student})`, points }, ...curve.teachers.map((t) => ({ name: t.model, points: [[first, t.score], [last, t.score]] }))],
      { title: `learning curve: ${curve.metric.slice("gold-test:".length)} on ${curve.test_examples} gold test records`, xLabel: "gold examples the student trained on" },
    ),
  );
}

/** Teacher vs student scores on the gold test split (span F1 on entity tasks, accuracy
 * otherwise: what the promotion rule compares), and the learning curve: the newest `curve`
 * job's, else one point per trained student version. */
function modelsView(evaluations, models, curve) {
  const METRIC = evaluations.some((e) => e.metrics["gold-test:span_f1"] !== undefined) ? "gold-test:span_f1" : "gold-test:accuracy";
  const scored = evaluations.filter((e) => e.metrics[METRIC] !== undefined);
  if (!scored.length && !curve) {
    return h("p", { class: "muted", "data-testid": "models" }, "Models: no teacher or student has been evaluated on this task yet.");
  }
  const teachers = scored.filter((e) => !e.model.includes("@"));
  const bars = scored.map((e) => ({ label: e.model.length > 18 ? `…${e.model.slice(-17)}` : e.model, value: e.metrics[METRIC], note: e.model.includes("@") ? "student" : "teacher" }));
  const versions = models.filter((m) => m.metrics[METRIC] !== undefined).sort((a, b) => a.train_examples - b.train_examples);
  const chart = curve
    ? curveChart(curve)
    : versions.length
    ? lineChart(
        [
          { name: "student", points: versions.map((m) => [m.train_examples, m.metrics[METRIC]]) },
          ...teachers.map((t) => ({ name: t.model.split(":")[0], points: [[versions[0].train_examples, t.metrics[METRIC]], [versions[versions.length - 1].train_examples, t.metrics[METRIC]]] })),
        ],
        { title: `learning curve: ${METRIC.slice("gold-test:".length)} on the gold test split`, xLabel: "gold examples the student trained on" },
      )
    : null;
  const promoted = models.find((m) => m.promoted);
  return h(
    "div",
    { class: "grid2", "data-testid": "models" },
    barChart(bars, { title: `${METRIC} (teachers and students)` }),
    h("div", {}, chart, h("p", { class: "muted" }, promoted ? `assisting model: ${promoted.name} v${promoted.version} (${promoted.promotion_note})` : "no promoted model yet")),
  );
}

function jobsView(jobs) {
  if (!jobs.length) return null;
  const state = (j) => j.state.replace("JOB_STATE_", "").toLowerCase();
  return h(
    "table",
    { "data-testid": "jobs" },
    h("tr", {}, h("th", {}, "Job"), h("th", {}, "Kind"), h("th", {}, "Model"), h("th", {}, "State"), h("th", {}, "Attempt"), h("th", {}, "Progress"), h("th", {}, "Last epoch"), h("th", {}, "Error")),
    jobs.map((j) => {
      const last = j.metrics[j.metrics.length - 1];
      return h(
        "tr",
        {},
        h("td", {}, j.id),
        h("td", {}, j.spec.kind.replace("JOB_KIND_", "").toLowerCase()),
        h("td", {}, j.spec.model),
        h("td", {}, state(j)),
        h("td", {}, `${j.attempt}/${j.max_attempts}`),
        h("td", {}, progressBar(Math.round(j.progress * 100), 100)),
        h("td", {}, last ? `loss ${last.loss.toFixed(3)}, dev ${last.dev_score.toFixed(3)}` : ""),
        h("td", { class: "error" }, j.error),
      );
    }),
  );
}

// ---- start ----

/** What the single sign-on callback left in the URL fragment: a session token, or why not. */
function takeSignOnResult() {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("sso_token");
  const error = params.get("sso_error");
  if (token === null && error === null) return "";
  // The token must not stay in the address bar or the history.
  history.replaceState(null, "", location.pathname);
  if (token) session.token = token;
  return error || "";
}

async function boot() {
  const ssoError = takeSignOnResult();
  if (ssoError) return signInView(ssoError);
  if (!session.token) return signInView();
  try {
    session.user = await api("/api/me");
    localStorage.setItem("gloss.user", JSON.stringify(session.user));
  } catch (e) {
    if (e instanceof NetworkError) {
      // Started while the server is away: work from what this browser already knows.
      session.user = JSON.parse(localStorage.getItem("gloss.user") || "null");
      if (!session.user) return signInView("Cannot reach the server.");
    } else {
      session.token = "";
      return signInView(e instanceof ApiError && e.status === 401 ? "Your session has ended; sign in again." : e.message);
    }
  }
  startOutbox();
  route();
}

boot();
