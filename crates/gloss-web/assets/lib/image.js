// The image stage: an example's image at a zoom, with boxes drawn over it as SVG. The SVG's
// viewBox is the image's own pixel grid, so boxes stay in image pixels and zooming only resizes
// the stage: the overlay cannot drift from the picture. With `onDraw`, a mouse drag draws a box
// and a click picks the box under it; without, the stage only shows (review).

import * as B from "./boxes.js";
import { h } from "./views.js";

const SVG = "http://www.w3.org/2000/svg";
/** Above this zoom the picture is shown with hard pixel edges, to place boxes on them. */
const PIXELATED_ZOOM = 2;

function svg(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class ImageStage {
  /**
   * @param load () => Promise<string>, the image's URL (fetched with the session token)
   * @param size {width, height} as the server gives it, or null to take the loaded image's own
   * @param classOf (label) => the label's colour class
   * @param maxHeight height (px) the fitting zoom fills at most
   * @param onDraw (box) => void: a box drawn with the mouse, in image pixels, without a label
   * @param onPick (index) => void: a click on box `index`, or beside every box (-1)
   */
  constructor({ load, size, classOf, maxHeight, onDraw, onPick, alt = "the example's image" }) {
    this.size = size && size.width > 0 && size.height > 0 ? { width: size.width, height: size.height } : null;
    this.classOf = classOf;
    this.maxHeight = maxHeight;
    this.onDraw = onDraw;
    this.onPick = onPick;
    this.scale = 1;
    this.fitting = true;
    this.boxes = [];
    this.look = {};
    this.drag = null;
    this.scrolled = { left: 0, top: 0 };
    this.img = h("img", { class: "picture", "data-testid": "image", alt, draggable: "false" });
    this.overlay = svg("svg", { class: "boxes", "data-testid": "boxes", preserveAspectRatio: "none" });
    this.canvas = h("div", { class: "canvas" }, this.img, this.overlay);
    this.status = h("p", { class: "muted", "data-testid": "image-status" }, "Loading the image…");
    this.el = h("div", { class: onDraw ? "stage draw" : "stage", "data-testid": "image-stage" }, this.status, this.canvas);
    this.el.style.maxHeight = `${maxHeight}px`;
    this.el.addEventListener("scroll", () => this.#remember());
    // Fits the image once the stage is laid out and whenever its width changes; its height
    // follows the zoom, so it is no reason to refit. The fit waits a frame: resizing what is
    // observed inside the observer's callback is a resize loop.
    new ResizeObserver(([entry]) => {
      if (entry.contentRect.width === this.seenWidth) return;
      this.seenWidth = entry.contentRect.width;
      if (this.fitting) requestAnimationFrame(() => this.fitting && this.#fit());
    }).observe(this.el);
    if (onDraw) this.#listen();
    this.img.addEventListener("load", () => this.#loaded());
    this.img.addEventListener("error", () => this.#say("The image cannot be shown."));
    this.#load(load);
  }

  /** Fetches the image, retrying with backoff (the network may come back) until it arrives or
   * the stage has left the page. */
  async #load(load) {
    for (let wait = 1000, tries = 1; ; wait = Math.min(2 * wait, 8000), tries++) {
      try {
        this.img.src = await load();
        return;
      } catch (e) {
        this.#say(`The image cannot be loaded (${e.message}); trying again…`);
      }
      await sleep(wait);
      // A stage that was shown and then replaced, or never shown at all, stops asking.
      if (!this.el.isConnected && (this.shown || tries >= 3)) return;
    }
  }

  #say(text) {
    this.status.textContent = text;
    this.status.hidden = false;
  }

  #loaded() {
    this.size ||= { width: this.img.naturalWidth, height: this.img.naturalHeight };
    this.status.hidden = true;
    this.el.dataset.loaded = "true";
    if (this.fitting) this.#fit();
    else this.#setScale(this.scale);
  }

  /** Shows `boxes` (image pixels): `selected` is outlined, `diff` (a Set of indices) marked as
   * disputed, and a box being dragged gets the colour of `draftLabel`. */
  draw(boxes, { selected = -1, diff = null, draftLabel = "" } = {}) {
    this.boxes = boxes;
    this.look = { selected, diff, draftLabel };
    this.#drawBoxes();
  }

  /** One zoom step in (1) or out (-1), or back to fitting the image (0). */
  zoom(direction) {
    if (!this.size) return;
    this.fitting = direction === 0;
    if (this.fitting) this.#fit();
    else this.#setScale(B.stepZoom(this.scale, direction));
  }

  /** Puts back the scroll position a re-render took away (an element taken out of the page and
   * put back loses it). */
  restoreScroll() {
    this.el.scrollLeft = this.scrolled.left;
    this.el.scrollTop = this.scrolled.top;
  }

  #remember() {
    this.scrolled = { left: this.el.scrollLeft, top: this.el.scrollTop };
  }

  #fit() {
    if (!this.size || !this.el.isConnected) return;
    this.shown = true;
    // Measured with the picture out of the way, so that a scroll bar the previous zoom needed
    // does not narrow the space.
    this.canvas.style.width = this.canvas.style.height = "0px";
    this.#setScale(B.fitZoom(this.size.width, this.size.height, this.el.clientWidth, this.maxHeight));
  }

  /** Sets the zoom, keeping the image point at the middle of the view where it is. */
  #setScale(scale) {
    if (!this.size) return;
    const st = this.el;
    const middle = { x: (st.scrollLeft + st.clientWidth / 2) / this.scale, y: (st.scrollTop + st.clientHeight / 2) / this.scale };
    this.scale = scale;
    this.canvas.style.width = `${this.size.width * scale}px`;
    this.canvas.style.height = `${this.size.height * scale}px`;
    st.scrollLeft = middle.x * scale - st.clientWidth / 2;
    st.scrollTop = middle.y * scale - st.clientHeight / 2;
    // Now, not at the scroll event: a re-render in this frame would restore a stale place.
    this.#remember();
    st.dataset.zoom = String(B.roundTo(scale, 0.001));
    st.classList.toggle("zoomed", scale > PIXELATED_ZOOM);
    this.#drawBoxes();
  }

  #drawBoxes() {
    this.overlay.replaceChildren();
    if (!this.size) return;
    this.overlay.setAttribute("viewBox", `0 0 ${this.size.width} ${this.size.height}`);
    // One screen pixel in image pixels: labels keep their size on screen at every zoom.
    this.overlay.style.setProperty("--px", `${1 / this.scale}px`);
    const { selected, diff, draftLabel } = this.look;
    this.boxes.forEach((b, i) => {
      const state = `${i === selected ? " selected" : ""}${diff && diff.has(i) ? " diff" : ""}`;
      this.overlay.append(this.#mark(b, `box ${this.classOf(b.label)}${state}`, { "data-box": i, "data-label": b.label }));
    });
    if (this.drag) {
      const draft = B.clampBox(B.normalize(this.drag.from, this.drag.to), this.size.width, this.size.height);
      this.overlay.append(this.#mark({ ...draft, label: "" }, `box draft ${this.classOf(draftLabel)}`, { "data-testid": "draft" }));
    }
  }

  /** A box's outline (a dark halo under the label's colour, visible on any picture) and its
   * label, just inside the top-left corner. */
  #mark(b, cls, attrs) {
    const g = svg("g", { class: cls, ...attrs });
    const rect = { x: b.x, y: b.y, width: b.width, height: b.height };
    g.append(svg("rect", { class: "halo", ...rect }), svg("rect", { class: "edge", ...rect }));
    if (b.label) {
      const text = svg("text", { x: b.x + 3 / this.scale, y: b.y + 2 / this.scale });
      text.textContent = b.label;
      g.append(text);
    }
    return g;
  }

  // ---- drawing with the mouse ----

  #listen() {
    this.canvas.addEventListener("pointerdown", (e) => this.#down(e));
    this.canvas.addEventListener("pointermove", (e) => this.#move(e));
    this.canvas.addEventListener("pointerup", (e) => this.#up(e));
    this.canvas.addEventListener("pointercancel", () => {
      this.drag = null;
      this.#drawBoxes();
    });
  }

  /** Where pointer event `e` is on the image, in image pixels. */
  #point(e) {
    const r = this.canvas.getBoundingClientRect();
    return B.toImage({ x: e.clientX, y: e.clientY }, { scale: this.scale, offsetX: r.left, offsetY: r.top });
  }

  #down(e) {
    if (e.button !== 0 || !this.size) return;
    // No text selection and no native image drag; the drag stays ours outside the stage too.
    e.preventDefault();
    this.canvas.setPointerCapture(e.pointerId);
    const p = this.#point(e);
    this.drag = { from: p, to: p };
  }

  #move(e) {
    if (!this.drag) return;
    this.drag.to = this.#point(e);
    this.#drawBoxes();
  }

  #up(e) {
    if (!this.drag) return;
    const { from } = this.drag;
    const to = this.#point(e);
    this.drag = null;
    this.#drawBoxes();
    const box = B.boxFromDrag(from, to, this.size, B.minBoxSize(this.scale));
    if (box) this.onDraw(box);
    else this.onPick(B.hitTest(this.boxes, to));
  }
}
