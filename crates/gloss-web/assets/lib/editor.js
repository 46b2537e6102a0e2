// The annotation editor: renders one example for the task's interface and turns keys and mouse
// selections into a decision. The annotator's view and the reviewer's "edit" both use it.
//
// Keys: binary a accept, x reject, space ignore. Choice: number keys pick (single choice submits
// at once; multi-choice toggles, then a or Enter accepts). Spans: number key picks the label for
// mouse selections, or labels the keyboard selection (arrow keys move, shift+arrows extend);
// Delete removes the span under the cursor; click a span to remove it; a or Enter accepts.
// Relations tasks add a relation mode (r toggles it): click a span or move to it with the arrow
// keys and press h for the head and c for the child (a click picks the head, then the child),
// then a number key gives the relation its label; arcs are drawn over the text. Click a relation
// in the list to remove it; z takes back the last change to spans or relations.
// Image tasks show the image (+ and - zoom, 0 fits it). Image boxes: drag on the image to draw a
// box with the active label; a number key picks the label and relabels the selected box; click a
// box (or move through them with the arrow keys) to select it, Delete or Backspace removes it,
// Escape lets go of it, z takes back the last change to the boxes. Image choice: as choice.

import { imageUrl } from "./api.js";
import * as B from "./boxes.js";
import { ImageStage } from "./image.js";
import * as S from "./spans.js";
import { h, mount } from "./views.js";

const SPAN_INTERFACES = ["INTERFACE_NER", "INTERFACE_NER_CORRECT", "INTERFACE_SPANS", "INTERFACE_RELATIONS"];
const IMAGE_INTERFACES = ["INTERFACE_IMAGE_BOXES", "INTERFACE_IMAGE_CHOICE"];

export const isSpanTask = (task) => SPAN_INTERFACES.includes(task.interface);
export const isImageTask = (task) => IMAGE_INTERFACES.includes(task.interface);
/** Zoom direction of the image keys: in, out, and back to fitting (0). */
const ZOOM_KEYS = new Map([["+", 1], ["=", 1], ["-", -1], ["0", 0]]);

/** Colour class of a label (stable by position in the scheme). */
export const labelClass = (task, label) => `c${Math.max(0, task.labels.indexOf(label)) % 9}`;

export class Editor {
  /**
   * @param task the task (JSON)
   * @param example a leased example, or {seq, text, tokens, image} for review
   * @param onDecide (decision, {choices, spans, relations, boxes, label}) => void
   * @param prefill an earlier answer to start from (undo, review edit)
   */
  constructor(task, example, onDecide, prefill) {
    this.task = task;
    this.ex = example;
    this.onDecide = onDecide;
    this.multi = task.interface === "INTERFACE_MULTI_CHOICE";
    this.spanTask = isSpanTask(task);
    this.allowOverlap = task.interface === "INTERFACE_SPANS";
    this.relTask = task.interface === "INTERFACE_RELATIONS";
    this.boxTask = task.interface === "INTERFACE_IMAGE_BOXES";
    this.boxEdits = new B.UndoStack(); // box edits, for z
    this.selectedBox = -1;
    this.relMode = false;
    this.pick = { head: null, child: null }; // span keys picked in relation mode
    this.relFocus = 0; // span index the arrow keys are on in relation mode
    this.history = []; // earlier {spans, relations}, for z
    this.activeLabel = 0;
    this.cursor = 0;
    this.sel = null; // {anchor} when the keyboard is selecting
    const tokens = example.tokens || [];
    const sugg = example.suggestion;
    const from = prefill || example.previous;
    if (from) {
      this.choices = new Set(from.choices || []);
      this.spans = this.#spansFrom(from.spans, false);
      this.relations = S.relationsFrom(from.spans, from.relations);
      this.boxes = this.boxTask ? (from.boxes || []).map(boxOf) : [];
    } else {
      // Suggestions are labels or spans; image-boxes tasks take none.
      const choosing = sugg && !this.spanTask && !this.boxTask && task.interface !== "INTERFACE_BINARY";
      this.choices = new Set(choosing ? sugg.labels : []);
      this.suggestedChoices = new Set(this.choices);
      this.spans = this.spanTask && sugg ? this.#spansFrom(sugg.spans, true) : [];
      this.relations = this.relTask && sugg ? S.relationsFrom(sugg.spans, sugg.relations) : [];
      this.boxes = [];
    }
    this.relations = S.keepRelations(this.relations, this.spans);
    this.tokens = tokens;
    this.el = h("div", { class: "editor", "data-seq": example.seq });
    if (isImageTask(task)) this.stage = this.#stage();
    this.render();
  }

  #stage() {
    return new ImageStage({
      load: () => imageUrl(this.task, this.ex),
      size: this.ex.image,
      classOf: (label) => labelClass(this.task, label),
      maxHeight: Math.max(240, Math.round(window.innerHeight * 0.6)),
      onDraw: this.boxTask ? (box) => this.#drawn(box) : undefined,
      onPick: this.boxTask ? (i) => this.#selectBox(i) : undefined,
    });
  }

  #spansFrom(spans, suggested) {
    const out = [];
    for (const s of spans || []) {
      const snapped = S.snapToTokens(this.ex.tokens || [], s.start, s.end);
      if (snapped) out.push({ ...snapped, label: s.label, suggested });
    }
    return S.sortSpans(out);
  }

  answerParts() {
    return {
      label: this.ex.label || "",
      choices: [...this.choices],
      spans: this.spans.map((s) => ({ start: s.start, end: s.end, label: s.label })),
      relations: S.relationIndices(this.relations, this.spans),
      boxes: this.boxes.map(boxOf),
    };
  }

  /** Remembers spans and relations before a change, for z. */
  #save() {
    this.history.push({ spans: this.spans, relations: this.relations });
    if (this.history.length > 100) this.history.shift();
  }

  decide(decision) {
    const parts = this.answerParts();
    // A rejected or ignored example carries no choices, spans, relations or boxes (the server
    // refuses them): the decision is about the example itself, whatever was suggested or drawn.
    if (decision !== "DECISION_ACCEPT") {
      Object.assign(parts, { choices: [], spans: [], relations: [], boxes: [] });
    }
    this.onDecide(decision, parts);
  }

  render() {
    const t = this.task;
    const parts = [];
    if (t.instructions) parts.push(h("p", { class: "muted" }, t.instructions));
    if (t.interface === "INTERFACE_BINARY") {
      parts.push(h("div", { class: "labels" }, h("span", { class: "proposed" }, this.ex.label || t.labels[0])));
    } else if (this.relMode) {
      parts.push(this.#relationBar());
    } else {
      parts.push(this.#labelBar());
    }
    if (this.relTask) parts.push(this.#modeLine());
    if (this.stage) parts.push(this.#imageView());
    else parts.push(this.spanTask ? this.#spanText() : h("div", { class: "example", "data-testid": "text" }, this.ex.text));
    if (this.spanTask && this.spans.length) parts.push(this.#spanList());
    if (this.boxTask && this.boxes.length) parts.push(this.#boxList());
    if (this.relTask && this.relations.length) parts.push(this.#relationList());
    const sugg = this.ex.suggestion;
    if (sugg && (sugg.source || sugg.score)) {
      // On a binary task a suggestion accepts the proposed label (it lists it) or rejects it.
      const binary = t.interface === "INTERFACE_BINARY";
      const proposed = this.ex.label || t.labels[0];
      const verdict = binary ? ((sugg.labels || []).includes(proposed) ? ": accept" : ": reject") : "";
      parts.push(
        h(
          "p",
          { class: "muted", "data-testid": "suggestion" },
          `suggested by ${sugg.source || "a model"}${verdict}`,
          sugg.score ? ` (confidence ${sugg.score.toFixed(2)})` : "",
        ),
      );
    }
    mount(this.el, parts);
    this.stage?.restoreScroll();
    if (this.relTask) requestAnimationFrame(() => this.#drawArcs());
  }

  /** The caption, if any, and the image with the boxes over it. */
  #imageView() {
    this.stage.draw(this.boxes, { selected: this.selectedBox, draftLabel: this.task.labels[this.activeLabel] });
    return [this.ex.text ? h("p", { class: "caption", "data-testid": "text" }, this.ex.text) : null, this.stage.el];
  }

  #boxList() {
    return h(
      "div",
      { class: "labels", "data-testid": "box-list" },
      this.boxes.map((b, i) =>
        h(
          "span",
          { class: `label ${labelClass(this.task, b.label)}${i === this.selectedBox ? " active" : ""}`, "data-box": i, title: "click to select, then Delete removes it or a number key relabels it", onclick: () => this.#selectBox(i) },
          `${b.label} · ${B.boxSize(b)} at ${B.roundTo(b.x, 1)},${B.roundTo(b.y, 1)}`,
        ),
      ),
    );
  }

  #modeLine() {
    const picked = (k) => (k ? S.sliceCodePoints(this.ex.text, ...k.split(":").map(Number)) : "…");
    const text = this.relMode
      ? `relation mode (r leaves): head ${picked(this.pick.head)} → child ${picked(this.pick.child)}; then 1-9 names the relation`
      : "span mode (r switches to relations)";
    return h("p", { class: "muted mode", "data-testid": "mode", "data-mode": this.relMode ? "relations" : "spans" }, text);
  }

  #relationBar() {
    const labels = this.task.relation_labels || [];
    return h(
      "div",
      { class: "labels relation-labels" },
      labels.map((l, i) =>
        h("span", { class: "label rel", "data-relation-label": l, onclick: () => this.#relNumber(i) }, i < 9 ? h("kbd", {}, String(i + 1)) : null, " ", l),
      ),
    );
  }

  #relationList() {
    const name = (k) => S.sliceCodePoints(this.ex.text, ...k.split(":").map(Number));
    return h(
      "div",
      { class: "labels", "data-testid": "relations" },
      this.relations.map((r, i) =>
        h(
          "span",
          { class: "label rel", title: "click to remove", "data-relation": `${r.head}>${r.child}:${r.label}`, onclick: () => this.#removeRelation(i) },
          `${name(r.head)} → ${name(r.child)} · ${r.label} ✕`,
        ),
      ),
    );
  }

  /** Arcs from each head span over the text to its child span, with an arrow and the label. */
  #drawArcs() {
    const box = this.el.querySelector("[data-testid=text]");
    if (!box || !box.isConnected) return;
    box.querySelector("svg.arcs")?.remove();
    if (!this.relations.length) return;
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "arcs");
    svg.setAttribute("data-testid", "arcs");
    const origin = box.getBoundingClientRect();
    svg.setAttribute("width", String(box.scrollWidth));
    svg.setAttribute("height", String(box.scrollHeight));
    const spot = (key) => {
      const i = this.spans.findIndex((s) => S.spanPlace(s) === key);
      const mark = box.querySelector(`mark[data-span="${i}"]`);
      if (!mark) return null;
      const r = mark.getBoundingClientRect();
      return { x: r.left - origin.left + r.width / 2, y: r.top - origin.top };
    };
    this.relations.forEach((rel, n) => {
      const a = spot(rel.head);
      const b = spot(rel.child);
      if (!a || !b) return;
      const lift = 14 + 6 * (n % 3);
      const top = Math.min(a.y, b.y) - lift;
      const path = document.createElementNS(ns, "path");
      path.setAttribute("d", `M ${a.x} ${a.y} C ${a.x} ${top}, ${b.x} ${top}, ${b.x} ${b.y}`);
      path.setAttribute("class", "arc");
      path.setAttribute("data-arc", `${rel.head}>${rel.child}:${rel.label}`);
      svg.append(path);
      const head = document.createElementNS(ns, "path");
      head.setAttribute("d", `M ${b.x - 4} ${b.y - 7} L ${b.x} ${b.y} L ${b.x + 4} ${b.y - 7}`);
      head.setAttribute("class", "arc");
      svg.append(head);
      const label = document.createElementNS(ns, "text");
      label.setAttribute("x", String((a.x + b.x) / 2));
      label.setAttribute("y", String(top + 4));
      label.setAttribute("class", "arc-label");
      label.textContent = rel.label;
      svg.append(label);
    });
    box.prepend(svg);
  }

  #labelBar() {
    const t = this.task;
    return h(
      "div",
      { class: "labels" },
      t.labels.map((l, i) => {
        const cls = ["label", labelClass(t, l)];
        if ((this.spanTask || this.boxTask) && i === this.activeLabel) cls.push("active");
        if (!this.spanTask && this.choices.has(l)) cls.push("chosen");
        if (this.suggestedChoices && this.suggestedChoices.has(l)) cls.push("suggested");
        return h(
          "span",
          { class: cls.join(" "), "data-label": l, onclick: () => this.#number(i) },
          i < 9 ? h("kbd", {}, String(i + 1)) : null,
          " ",
          l,
        );
      }),
    );
  }

  #spanAt(tokenIndex) {
    // The shortest span covering the token (the innermost, for overlapping spans).
    let best = -1;
    this.spans.forEach((s, i) => {
      if (s.token_start <= tokenIndex && tokenIndex <= s.token_end) {
        if (best < 0 || s.end - s.start < this.spans[best].end - this.spans[best].start) best = i;
      }
    });
    return best;
  }

  #spanText() {
    const t = this.task;
    const box = h("div", { class: this.relTask ? "example rel" : "example", "data-testid": "text" });
    const selLo = this.sel ? Math.min(this.sel.anchor, this.cursor) : -1;
    const selHi = this.sel ? Math.max(this.sel.anchor, this.cursor) : -2;
    let i = 0;
    const text = Array.from(this.ex.text);
    let pos = 0;
    const gap = (to) => {
      if (to > pos) box.append(text.slice(pos, to).join(""));
      pos = Math.max(pos, to);
    };
    while (i < this.tokens.length) {
      const k = this.#spanAt(i);
      const tokClass = (j) => ["tok", j === this.cursor ? "cursor" : "", j >= selLo && j <= selHi ? "sel" : ""].join(" ").trim();
      const tokEl = (j) => h("span", { class: tokClass(j), "data-i": j }, text.slice(this.tokens[j].start, this.tokens[j].end).join(""));
      gap(this.tokens[i].start);
      if (k >= 0 && this.spans[k].token_start === i) {
        const s = this.spans[k];
        const place = S.spanPlace(s);
        const picked = this.relMode && (place === this.pick.head ? " head" : place === this.pick.child ? " child" : "");
        const focused = this.relMode && k === this.relFocus ? " focus" : "";
        const mark = h("mark", {
          class: `span ${labelClass(t, s.label)}${s.suggested ? " suggested" : ""}${picked || ""}${focused}`,
          "data-span": k,
          title: this.relMode ? `${s.label}: click to pick as head, then child` : `${s.label}: click to remove`,
        });
        for (let j = s.token_start; j <= s.token_end; j++) {
          if (j > s.token_start) mark.append(text.slice(this.tokens[j - 1].end, this.tokens[j].start).join(""));
          mark.append(tokEl(j));
        }
        mark.append(h("span", { class: "tag" }, s.label));
        box.append(mark);
        pos = this.tokens[s.token_end].end;
        i = s.token_end + 1;
      } else {
        box.append(tokEl(i));
        pos = this.tokens[i].end;
        i++;
      }
    }
    gap(text.length);
    box.addEventListener("mouseup", (e) => this.#mouseUp(e, box));
    return box;
  }

  #spanList() {
    return h(
      "div",
      { class: "labels", "data-testid": "spans" },
      this.spans.map((s, i) =>
        h(
          "span",
          { class: `label ${labelClass(this.task, s.label)}${s.suggested ? " suggested" : ""}`, title: "click to remove", onclick: () => this.#remove(i) },
          `${S.sliceCodePoints(this.ex.text, s.start, s.end)} · ${s.label} ✕`,
        ),
      ),
    );
  }

  #mouseUp(e, box) {
    const selection = window.getSelection();
    const tokOf = (node) => {
      const el = node && (node.nodeType === 1 ? node : node.parentElement);
      const tok = el && el.closest(".tok");
      return tok && box.contains(tok) ? Number(tok.dataset.i) : null;
    };
    if (selection && !selection.isCollapsed) {
      const a = tokOf(selection.anchorNode);
      const b = tokOf(selection.focusNode);
      selection.removeAllRanges();
      if (a !== null && b !== null) {
        this.#label(S.tokenRange(this.tokens, a, b), this.task.labels[this.activeLabel]);
        return;
      }
    }
    const mark = e.target.closest && e.target.closest("mark.span");
    if (mark && this.relMode) this.#pickSpan(Number(mark.dataset.span), null);
    else if (mark) this.#remove(Number(mark.dataset.span));
  }

  #label(range, label) {
    if (!range) return;
    this.#save();
    this.spans = S.addSpan(this.spans, { ...range, label, suggested: false }, this.allowOverlap);
    this.relations = S.keepRelations(this.relations, this.spans);
    this.sel = null;
    this.render();
  }

  #remove(i) {
    this.#save();
    this.spans = S.removeSpan(this.spans, i);
    this.relations = S.keepRelations(this.relations, this.spans);
    this.render();
  }

  /** Picks span `i` as the head or the child (`end`), or, with `end` null, whichever is next. */
  #pickSpan(i, end) {
    const s = this.spans[i];
    if (!s) return;
    const place = S.spanPlace(s);
    const which = end || (this.pick.head === null || this.pick.child !== null ? "head" : "child");
    if (which === "head") this.pick = { head: place, child: null };
    else if (place !== this.pick.head) this.pick = { ...this.pick, child: place };
    this.relFocus = i;
    this.render();
  }

  #relNumber(i) {
    const label = (this.task.relation_labels || [])[i];
    if (label === undefined || !this.pick.head || !this.pick.child) return;
    this.#save();
    this.relations = S.addRelation(this.relations, { head: this.pick.head, child: this.pick.child, label });
    this.pick = { head: null, child: null };
    this.render();
  }

  #removeRelation(i) {
    this.#save();
    this.relations = this.relations.filter((_, j) => j !== i);
    this.render();
  }

  #undoEdit() {
    const last = this.history.pop();
    if (!last) return;
    this.spans = last.spans;
    this.relations = last.relations;
    this.pick = { head: null, child: null };
    this.render();
  }

  /** Keys of relation mode; returns true when the key was handled. */
  #relationKey(e) {
    const k = e.key;
    if (/^[1-9]$/.test(k)) {
      this.#relNumber(Number(k) - 1);
      return true;
    }
    if (k === "ArrowLeft" || k === "ArrowRight") {
      if (this.spans.length) {
        this.relFocus = Math.max(0, Math.min(this.spans.length - 1, this.relFocus + (k === "ArrowLeft" ? -1 : 1)));
        this.render();
      }
      return true;
    }
    if (k === "h" || k === "c") {
      this.#pickSpan(this.relFocus, k === "h" ? "head" : "child");
      return true;
    }
    if (k === "Escape") {
      if (this.pick.head) this.pick = { head: null, child: null };
      else this.relMode = false;
      this.render();
      return true;
    }
    return false;
  }

  /** Applies a box edit (null: nothing to do) and remembers it for z. */
  #editBoxes(edit) {
    if (!edit) return;
    this.boxes = B.applyEdit(this.boxes, edit);
    this.boxEdits.push(edit);
  }

  /** A box drawn with the mouse: it takes the active label. It is not selected, so the next
   * number key picks the label of the next box rather than changing this one. */
  #drawn(box) {
    this.#editBoxes(B.addEdit(this.boxes, { ...box, label: this.task.labels[this.activeLabel] }));
    this.selectedBox = -1;
    this.render();
  }

  /** Selects box `i` (-1: none). */
  #selectBox(i) {
    this.selectedBox = i;
    this.render();
  }

  #undoBoxEdit() {
    const edit = this.boxEdits.pop();
    if (!edit) return;
    this.boxes = B.revertEdit(this.boxes, edit);
    this.selectedBox = -1;
    this.render();
  }

  /** Keys of image tasks; returns true when the key was handled. */
  #imageKey(e) {
    const k = e.key;
    if (ZOOM_KEYS.has(k)) {
      this.stage.zoom(ZOOM_KEYS.get(k));
      return true;
    }
    if (!this.boxTask) return false;
    if (k === "z") {
      this.#undoBoxEdit();
      return true;
    }
    if (k === "Escape") {
      this.#selectBox(-1);
      return true;
    }
    const n = this.boxes.length;
    if ((k === "ArrowRight" || k === "ArrowLeft") && n) {
      // From no selection, right goes to the first box and left to the last.
      const from = this.selectedBox < 0 ? (k === "ArrowRight" ? -1 : n) : this.selectedBox;
      this.#selectBox((from + (k === "ArrowRight" ? 1 : -1) + n) % n);
      return true;
    }
    // Backspace with no box selected stays the page's: it undoes the last answer.
    if ((k === "Delete" || k === "Backspace") && this.selectedBox >= 0) {
      this.#editBoxes(B.removeEdit(this.boxes, this.selectedBox));
      this.#selectBox(-1);
      return true;
    }
    return false;
  }

  #number(i) {
    const label = this.task.labels[i];
    if (label === undefined) return;
    if (this.spanTask) {
      if (this.sel) this.#label(S.tokenRange(this.tokens, this.sel.anchor, this.cursor), label);
      else {
        this.activeLabel = i;
        this.render();
      }
    } else if (this.boxTask) {
      this.activeLabel = i;
      if (this.selectedBox >= 0) this.#editBoxes(B.relabelEdit(this.boxes, this.selectedBox, label));
      this.render();
    } else if (this.multi) {
      if (this.choices.has(label)) this.choices.delete(label);
      else this.choices.add(label);
      this.render();
    } else {
      this.choices = new Set([label]);
      this.render();
      this.decide("DECISION_ACCEPT");
    }
  }

  /** Handles a key; returns true when it was the editor's. */
  key(e) {
    const k = e.key;
    if (this.relTask && k === "r") {
      this.relMode = !this.relMode;
      this.pick = { head: null, child: null };
      this.relFocus = Math.min(this.relFocus, Math.max(0, this.spans.length - 1));
      this.render();
      return true;
    }
    if (this.spanTask && k === "z") {
      this.#undoEdit();
      return true;
    }
    if (this.stage && this.#imageKey(e)) return true;
    if (this.relMode && this.#relationKey(e)) return true;
    if (/^[1-9]$/.test(k) && this.task.interface !== "INTERFACE_BINARY") {
      this.#number(Number(k) - 1);
      return true;
    }
    if (this.spanTask && (k === "ArrowLeft" || k === "ArrowRight")) {
      const next = Math.max(0, Math.min(this.tokens.length - 1, this.cursor + (k === "ArrowLeft" ? -1 : 1)));
      if (e.shiftKey) {
        if (!this.sel) this.sel = { anchor: this.cursor };
      } else {
        this.sel = { anchor: next };
      }
      this.cursor = next;
      this.render();
      return true;
    }
    if (this.spanTask && k === "Escape") {
      this.sel = null;
      this.render();
      return true;
    }
    if (this.spanTask && k === "Delete") {
      const i = this.#spanAt(this.cursor);
      if (i >= 0) this.#remove(i);
      return true;
    }
    if (k === "a" || k === "Enter") {
      this.decide("DECISION_ACCEPT");
      return true;
    }
    if (k === "x") {
      this.decide("DECISION_REJECT");
      return true;
    }
    if (k === " ") {
      this.decide("DECISION_IGNORE");
      return true;
    }
    return false;
  }
}

/** A box as an answer holds it: its place in image pixels and its label, nothing else. */
function boxOf(b) {
  return { x: b.x, y: b.y, width: b.width, height: b.height, label: b.label };
}
