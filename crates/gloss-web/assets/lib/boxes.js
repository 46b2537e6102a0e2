// Box rules of the image-boxes interface: turning a mouse drag into a rectangle in the image's own
// pixels, converting between screen and image coordinates under a zoom, hit-testing, the undo
// stack of box edits, and which boxes of several answers the others do not share. Pure functions
// (unit-tested with `node --test`), no DOM: the image stage (image.js) does the drawing.
//
// A box is {x, y, width, height, label}, top-left origin, in image pixels, as the server stores it.

/** Boxes are kept to a tenth of a pixel: finer than any hand can draw, even zoomed in. */
export const PRECISION = 0.1;
/** A box narrower or lower than this many image pixels is dropped. */
export const MIN_BOX_PX = 2;
/** A drag shorter than this many screen pixels is a click, whatever the zoom. */
export const MIN_DRAG_SCREEN_PX = 4;
/** Zoom limits and the factor one zoom key applies. */
export const MIN_ZOOM = 0.1;
export const MAX_ZOOM = 16;
export const ZOOM_STEP = 1.25;
/** Fitting never enlarges a small image beyond this, so its pixels stay recognisable. */
export const MAX_FIT_ZOOM = 4;

/** A box's size for people, in whole pixels: "60×50". */
export const boxSize = (b) => `${roundTo(b.width, 1)}×${roundTo(b.height, 1)}`;

/** The smallest box (in image pixels) a drag at `scale` may make. */
export const minBoxSize = (scale) => Math.max(MIN_BOX_PX, MIN_DRAG_SCREEN_PX / scale);

/** The rectangle between two corners given in any order: {x, y, width, height}. */
export function normalize(a, b) {
  return { x: Math.min(a.x, b.x), y: Math.min(a.y, b.y), width: Math.abs(b.x - a.x), height: Math.abs(b.y - a.y) };
}

const clampTo = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

/** The part of `box` inside a `width` × `height` image (empty when it lies wholly outside). */
export function clampBox(box, width, height) {
  const x0 = clampTo(box.x, 0, width);
  const y0 = clampTo(box.y, 0, height);
  const x1 = clampTo(box.x + box.width, 0, width);
  const y1 = clampTo(box.y + box.height, 0, height);
  return { ...box, x: x0, y: y0, width: Math.max(0, x1 - x0), height: Math.max(0, y1 - y0) };
}

/** `v` to the nearest multiple of `step` (1, 0.5, 0.1…), without binary noise (0.30000000000000004). */
export function roundTo(v, step = PRECISION) {
  const decimals = (String(step).split(".")[1] || "").length;
  return Number((Math.round(v / step) * step).toFixed(decimals));
}

/**
 * `box` with its edges rounded to `step`. Edges, not x and width, are rounded, so a box clamped
 * to the image stays inside it (x + width never rounds past the image's edge).
 */
export function roundBox(box, step = PRECISION) {
  const x0 = roundTo(box.x, step);
  const y0 = roundTo(box.y, step);
  return {
    ...box,
    x: x0,
    y: y0,
    width: roundTo(roundTo(box.x + box.width, step) - x0, step),
    height: roundTo(roundTo(box.y + box.height, step) - y0, step),
  };
}

/**
 * The box a drag from `a` to `b` (image pixels, any corners) draws on a `width` × `height` image:
 * normalised, clamped to the image and rounded; null when smaller than `minSize` either way (an
 * accidental click or a drag outside the image).
 */
export function boxFromDrag(a, b, { width, height }, minSize = MIN_BOX_PX) {
  const box = roundBox(clampBox(normalize(a, b), width, height));
  return box.width >= minSize && box.height >= minSize ? box : null;
}

/**
 * A view maps image pixels to the screen: screen = offset + image × scale. `offsetX`/`offsetY`
 * are where the image's top-left corner is on screen.
 */
export function toImage(p, { scale, offsetX = 0, offsetY = 0 }) {
  return { x: (p.x - offsetX) / scale, y: (p.y - offsetY) / scale };
}

export function toScreen(p, { scale, offsetX = 0, offsetY = 0 }) {
  return { x: offsetX + p.x * scale, y: offsetY + p.y * scale };
}

/** `box` in screen coordinates under `view` (the label and other fields kept). */
export function boxToScreen(box, view) {
  const p = toScreen(box, view);
  return { ...box, x: p.x, y: p.y, width: box.width * view.scale, height: box.height * view.scale };
}

/** The zoom that shows a whole `width` × `height` image in `availWidth` × `availHeight`. */
export function fitZoom(width, height, availWidth, availHeight) {
  if (!(width > 0 && height > 0 && availWidth > 0 && availHeight > 0)) return 1;
  return clampTo(Math.min(availWidth / width, availHeight / height, MAX_FIT_ZOOM), MIN_ZOOM, MAX_ZOOM);
}

/** The zoom one step in (`direction` 1) or out (-1) from `scale`, within the limits. */
export function stepZoom(scale, direction) {
  return clampTo(scale * ZOOM_STEP ** Math.sign(direction), MIN_ZOOM, MAX_ZOOM);
}

const contains = (b, p) => p.x >= b.x && p.x <= b.x + b.width && p.y >= b.y && p.y <= b.y + b.height;

/** Index of the topmost box (the last drawn) containing point `p`, or -1. */
export function hitTest(boxes, p) {
  for (let i = boxes.length - 1; i >= 0; i--) if (contains(boxes[i], p)) return i;
  return -1;
}

// ---- edits and undo ----
//
// Every change to the boxes is an edit record that says how to apply it and how to take it back,
// so `z` can undo edits one by one without keeping a copy of every earlier state.

/** Adds `box` on top of the others. */
export const addEdit = (boxes, box) => ({ op: "add", index: boxes.length, box });
/** Removes box `i`. */
export const removeEdit = (boxes, i) => ({ op: "remove", index: i, box: boxes[i] });
/** Gives box `i` the label `label`; null when it has it already (nothing to undo). */
export const relabelEdit = (boxes, i, label) => (boxes[i].label === label ? null : { op: "relabel", index: i, from: boxes[i].label, to: label });

const withLabel = (boxes, i, label) => boxes.map((b, j) => (j === i ? { ...b, label } : b));
const without = (boxes, i) => boxes.filter((_, j) => j !== i);
const insert = (boxes, i, box) => [...boxes.slice(0, i), box, ...boxes.slice(i)];

/** The boxes after `edit` (a new array). */
export function applyEdit(boxes, edit) {
  switch (edit.op) {
    case "add":
      return insert(boxes, edit.index, edit.box);
    case "remove":
      return without(boxes, edit.index);
    case "relabel":
      return withLabel(boxes, edit.index, edit.to);
    default:
      throw new Error(`unknown box edit ${edit.op}`);
  }
}

/** The boxes before `edit`, given the boxes after it (a new array). */
export function revertEdit(boxes, edit) {
  switch (edit.op) {
    case "add":
      return without(boxes, edit.index);
    case "remove":
      return insert(boxes, edit.index, edit.box);
    case "relabel":
      return withLabel(boxes, edit.index, edit.from);
    default:
      throw new Error(`unknown box edit ${edit.op}`);
  }
}

/** The last `limit` edits, newest last. */
export class UndoStack {
  constructor(limit = 100) {
    this.limit = limit;
    this.edits = [];
  }

  push(edit) {
    this.edits.push(edit);
    if (this.edits.length > this.limit) this.edits.shift();
  }

  /** The newest edit, taken off the stack; undefined when there is none. */
  pop() {
    return this.edits.pop();
  }

  get size() {
    return this.edits.length;
  }
}

// ---- review ----

/** Intersection over union of two boxes (0 when they do not overlap). */
export function iou(a, b) {
  const w = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  return inter / (a.width * a.height + b.width * b.height - inter);
}

/** Whether box `a` lies on box `b` well enough to be the same box drawn by another hand. */
export const IOU_MATCH = 0.5;

/**
 * Pairs of indices [i, j] of boxes of `a` and of `b` that are the same box, one to one: the same
 * label and an intersection over union of at least IOU_MATCH, the best-overlapping pairs taken
 * first (ties by position). The server matches boxes the same way for its agreement figures and
 * to decide which examples go to review.
 */
export function matchBoxes(a, b) {
  const pairs = [];
  a.forEach((x, i) =>
    b.forEach((y, j) => {
      const score = x.label === y.label ? iou(x, y) : 0;
      if (score >= IOU_MATCH) pairs.push({ score, i, j });
    }),
  );
  pairs.sort((p, q) => q.score - p.score || p.i - q.i || p.j - q.j);
  const usedA = new Set();
  const usedB = new Set();
  const matched = [];
  for (const { i, j } of pairs) {
    if (usedA.has(i) || usedB.has(j)) continue;
    usedA.add(i);
    usedB.add(j);
    matched.push([i, j]);
  }
  return matched;
}

/**
 * What differs between answers' boxes, for the reviewer: for each answer, the indices of its
 * boxes that some other answer has no box matched to (matchBoxes).
 */
export function unmatchedBoxes(answers) {
  const boxesOf = (a) => a.boxes || [];
  return answers.map((a, i) => {
    const missing = new Set();
    answers.forEach((other, j) => {
      if (i === j) return;
      const matched = new Set(matchBoxes(boxesOf(a), boxesOf(other)).map(([k]) => k));
      boxesOf(a).forEach((_, k) => matched.has(k) || missing.add(k));
    });
    return new Set([...missing].sort((x, y) => x - y));
  });
}
