// Box rules of the image-boxes interface (run with `node --test`).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  MAX_FIT_ZOOM,
  MAX_ZOOM,
  MIN_BOX_PX,
  MIN_ZOOM,
  UndoStack,
  ZOOM_STEP,
  addEdit,
  applyEdit,
  boxSize,
  boxFromDrag,
  boxToScreen,
  clampBox,
  fitZoom,
  hitTest,
  iou,
  matchBoxes,
  minBoxSize,
  normalize,
  relabelEdit,
  removeEdit,
  revertEdit,
  roundBox,
  roundTo,
  stepZoom,
  toImage,
  toScreen,
  unmatchedBoxes,
} from "../../assets/lib/boxes.js";

// The demo's shapes are 240 × 160 pixels.
const IMAGE = { width: 240, height: 160 };

test("a drag from any corner to the opposite one is the same rectangle", () => {
  const want = { x: 10, y: 20, width: 30, height: 40 };
  assert.deepEqual(normalize({ x: 10, y: 20 }, { x: 40, y: 60 }), want, "top-left to bottom-right");
  assert.deepEqual(normalize({ x: 40, y: 60 }, { x: 10, y: 20 }), want, "bottom-right to top-left");
  assert.deepEqual(normalize({ x: 40, y: 20 }, { x: 10, y: 60 }), want, "top-right to bottom-left");
  assert.deepEqual(normalize({ x: 10, y: 60 }, { x: 40, y: 20 }), want, "bottom-left to top-right");
});

test("a box is clamped to the image, and one wholly outside becomes empty", () => {
  assert.deepEqual(clampBox({ x: -5, y: 150, width: 20, height: 30, label: "A" }, 240, 160), { x: 0, y: 150, width: 15, height: 10, label: "A" });
  assert.deepEqual(clampBox({ x: 230, y: -10, width: 40, height: 500 }, 240, 160), { x: 230, y: 0, width: 10, height: 160 });
  const outside = clampBox({ x: 250, y: 10, width: 20, height: 20 }, 240, 160);
  assert.equal(outside.width, 0);
  assert.deepEqual(clampBox({ x: 1, y: 2, width: 3, height: 4 }, 240, 160), { x: 1, y: 2, width: 3, height: 4 }, "inside: unchanged");
});

test("coordinates are rounded to a tenth of a pixel without binary noise", () => {
  assert.equal(roundTo(0.1 + 0.2), 0.3);
  assert.equal(roundTo(12.345), 12.3);
  assert.equal(roundTo(12.36), 12.4);
  assert.equal(roundTo(12.5, 1), 13, "whole pixels on request");
  assert.equal(roundTo(0.3, 0.25), 0.25, "any step");
  assert.deepEqual(roundBox({ x: 10.04, y: 0.06, width: 5.02, height: 1.11, label: "A" }), { x: 10, y: 0.1, width: 5.1, height: 1.1, label: "A" });
});

test("rounding edges keeps a box clamped to the image inside it", () => {
  const b = roundBox(clampBox({ x: 229.96, y: 0, width: 30, height: 10 }, 240, 160));
  assert.equal(b.x + b.width, 240);
  const c = roundBox({ x: 0.04, y: 0, width: 239.96, height: 160 });
  assert.ok(c.x + c.width <= 240, `${c.x} + ${c.width}`);
});

test("a drag becomes a rounded box inside the image; a click or a drag outside makes none", () => {
  assert.deepEqual(boxFromDrag({ x: 80.04, y: 70 }, { x: 20, y: 19.96 }, IMAGE), { x: 20, y: 20, width: 60, height: 50 });
  assert.deepEqual(boxFromDrag({ x: 200, y: 100 }, { x: 300, y: 200 }, IMAGE), { x: 200, y: 100, width: 40, height: 60 }, "clamped");
  assert.equal(boxFromDrag({ x: 50, y: 50 }, { x: 50.5, y: 51 }, IMAGE), null, "a click");
  assert.equal(boxFromDrag({ x: 10, y: 10 }, { x: 90, y: 11 }, IMAGE), null, "a line is no box");
  assert.equal(boxFromDrag({ x: 250, y: 10 }, { x: 300, y: 60 }, IMAGE), null, "wholly outside");
  assert.deepEqual(boxFromDrag({ x: 10, y: 10 }, { x: 10 + MIN_BOX_PX, y: 10 + MIN_BOX_PX }, IMAGE), { x: 10, y: 10, width: MIN_BOX_PX, height: MIN_BOX_PX }, "the minimum is allowed");
  assert.equal(boxFromDrag({ x: 10, y: 10 }, { x: 13, y: 13 }, IMAGE, 5), null, "a caller's larger minimum");
});

test("a box's size reads in whole pixels", () => {
  assert.equal(boxSize({ x: 1, y: 2, width: 60.04, height: 49.5 }), "60×50");
});

test("the smallest box counts in screen pixels when zoomed out and image pixels when zoomed in", () => {
  assert.equal(minBoxSize(0.5), 8, "4 screen pixels are 8 image pixels at half size");
  assert.equal(minBoxSize(1), 4);
  assert.equal(minBoxSize(8), MIN_BOX_PX);
});

test("screen and image coordinates convert both ways under zoom and offset", () => {
  const view = { scale: 2.5, offsetX: 100, offsetY: 40 };
  assert.deepEqual(toImage({ x: 100, y: 40 }, view), { x: 0, y: 0 }, "the image's corner");
  assert.deepEqual(toImage({ x: 150, y: 65 }, view), { x: 20, y: 10 });
  assert.deepEqual(toScreen({ x: 20, y: 10 }, view), { x: 150, y: 65 });
  for (const p of [{ x: 0, y: 0 }, { x: 239.9, y: 0.1 }, { x: 17.3, y: 99 }]) {
    const back = toImage(toScreen(p, view), view);
    assert.ok(Math.abs(back.x - p.x) < 1e-9 && Math.abs(back.y - p.y) < 1e-9, JSON.stringify(back));
  }
  assert.deepEqual(toImage({ x: 30, y: 12 }, { scale: 3 }), { x: 10, y: 4 }, "offset defaults to 0");
  assert.deepEqual(boxToScreen({ x: 20, y: 10, width: 8, height: 4, label: "A" }, view), { x: 150, y: 65, width: 20, height: 10, label: "A" });
});

test("a box drawn at any zoom lands on the same image pixels", () => {
  // The same corners of the image, dragged at three zooms with the image at three places.
  const corners = [{ x: 31.2, y: 40 }, { x: 90, y: 75.5 }];
  for (const view of [{ scale: 1 }, { scale: 3, offsetX: 12, offsetY: 200 }, { scale: 0.5, offsetX: -40, offsetY: 7 }]) {
    const [a, b] = corners.map((p) => toImage(toScreen(p, view), view));
    assert.deepEqual(boxFromDrag(a, b, IMAGE), { x: 31.2, y: 40, width: 58.8, height: 35.5 }, `scale ${view.scale}`);
  }
});

test("the fitting zoom shows the whole image, never enlarged past the cap", () => {
  assert.equal(fitZoom(240, 160, 960, 480), 3, "the height limits");
  assert.equal(fitZoom(240, 160, 360, 10000), 1.5, "the width limits");
  assert.equal(fitZoom(240, 160, 5000, 5000), MAX_FIT_ZOOM);
  assert.equal(fitZoom(100000, 100, 1000, 1000), MIN_ZOOM, "a panorama is shown at the smallest zoom");
  assert.equal(fitZoom(240, 160, 0, 480), 1, "nothing to measure yet");
  assert.equal(fitZoom(0, 0, 960, 480), 1, "size unknown yet");
});

test("zoom keys step by a factor within the limits", () => {
  assert.equal(stepZoom(2, 1), 2 * ZOOM_STEP);
  assert.equal(stepZoom(2, -1), 2 / ZOOM_STEP);
  assert.equal(stepZoom(stepZoom(3, 1), -1), 3, "in then out comes back");
  assert.equal(stepZoom(MAX_ZOOM, 1), MAX_ZOOM);
  assert.equal(stepZoom(MIN_ZOOM, -1), MIN_ZOOM);
});

test("a point hits the topmost box under it", () => {
  const boxes = [
    { x: 0, y: 0, width: 100, height: 100, label: "BIG" },
    { x: 20, y: 20, width: 10, height: 10, label: "SMALL" },
    { x: 150, y: 10, width: 20, height: 20, label: "AWAY" },
  ];
  assert.equal(hitTest(boxes, { x: 25, y: 25 }), 1, "the later box is on top");
  assert.equal(hitTest(boxes, { x: 50, y: 50 }), 0);
  assert.equal(hitTest(boxes, { x: 100, y: 100 }), 0, "edges count");
  assert.equal(hitTest(boxes, { x: 160, y: 20 }), 2);
  assert.equal(hitTest(boxes, { x: 200, y: 150 }), -1, "no box there");
  assert.equal(hitTest([], { x: 1, y: 1 }), -1);
});

test("each edit is undone by reverting it, newest first", () => {
  const a = { x: 1, y: 1, width: 5, height: 5, label: "SQUARE" };
  const b = { x: 9, y: 9, width: 5, height: 5, label: "CIRCLE" };
  const c = { x: 20, y: 2, width: 5, height: 5, label: "SQUARE" };
  const stack = new UndoStack();
  let boxes = [];
  const apply = (edit) => {
    boxes = applyEdit(boxes, edit);
    stack.push(edit);
  };
  apply(addEdit(boxes, a));
  apply(addEdit(boxes, b));
  apply(addEdit(boxes, c));
  apply(relabelEdit(boxes, 0, "CIRCLE"));
  apply(removeEdit(boxes, 1));
  assert.deepEqual(boxes, [{ ...a, label: "CIRCLE" }, c]);
  assert.equal(stack.size, 5);
  const states = [];
  for (let e = stack.pop(); e; e = stack.pop()) {
    boxes = revertEdit(boxes, e);
    states.push(boxes);
  }
  assert.deepEqual(states, [
    [{ ...a, label: "CIRCLE" }, b, c],
    [a, b, c],
    [a, b],
    [a],
    [],
  ]);
  assert.equal(stack.pop(), undefined, "nothing left to undo");
});

test("removing a middle box and undoing it puts it back in its place", () => {
  const boxes = ["A", "B", "C"].map((label, i) => ({ x: i * 10, y: 0, width: 5, height: 5, label }));
  const edit = removeEdit(boxes, 1);
  const after = applyEdit(boxes, edit);
  assert.deepEqual(after.map((b) => b.label), ["A", "C"]);
  assert.deepEqual(revertEdit(after, edit), boxes);
  assert.deepEqual(boxes.map((b) => b.label), ["A", "B", "C"], "edits never change their input");
});

test("relabelling a box to the label it has is no edit", () => {
  const boxes = [{ x: 0, y: 0, width: 5, height: 5, label: "A" }];
  assert.equal(relabelEdit(boxes, 0, "A"), null);
  assert.deepEqual(relabelEdit(boxes, 0, "B"), { op: "relabel", index: 0, from: "A", to: "B" });
  assert.throws(() => applyEdit(boxes, { op: "move" }), /unknown box edit move/);
  assert.throws(() => revertEdit(boxes, { op: "move" }), /unknown box edit move/);
});

test("the undo stack keeps only the newest edits", () => {
  const stack = new UndoStack(2);
  for (const n of [1, 2, 3]) stack.push({ op: "add", index: n });
  assert.equal(stack.size, 2);
  assert.equal(stack.pop().index, 3);
  assert.equal(stack.pop().index, 2);
  assert.equal(stack.pop(), undefined);
});

test("intersection over union", () => {
  const a = { x: 0, y: 0, width: 10, height: 10 };
  assert.equal(iou(a, a), 1);
  assert.equal(iou(a, { x: 5, y: 0, width: 10, height: 10 }), 50 / 150);
  assert.equal(iou(a, { x: 10, y: 0, width: 10, height: 10 }), 0, "touching edges do not overlap");
  assert.equal(iou(a, { x: 50, y: 50, width: 1, height: 1 }), 0);
});

test("boxes are matched one to one, the best overlaps first, the same label only", () => {
  const sq = (x, label = "SQUARE") => ({ x, y: 0, width: 10, height: 10, label });
  assert.deepEqual(matchBoxes([sq(0), sq(50)], [sq(51), sq(1)]), [[0, 1], [1, 0]]);
  assert.deepEqual(matchBoxes([sq(0)], [sq(0, "CIRCLE")]), [], "another label is another box");
  assert.deepEqual(matchBoxes([sq(0)], [sq(6)]), [], "overlapping by less than half is not the same box");
  // Two of a's squares lie on b's one square: only the better one is its match.
  assert.deepEqual(matchBoxes([sq(2), sq(1)], [sq(0)]), [[1, 0]]);
  assert.deepEqual(matchBoxes([sq(1), sq(1)], [sq(0)]), [[0, 0]], "ties go to the earlier box");
  assert.deepEqual(matchBoxes([], [sq(0)]), []);
});

test("differences mark the boxes another annotator has no match for", () => {
  const square = { x: 10, y: 10, width: 40, height: 40, label: "SQUARE" };
  const alice = { boxes: [square, { x: 100, y: 20, width: 30, height: 30, label: "CIRCLE" }] };
  const bob = {
    boxes: [
      { x: 12, y: 11, width: 40, height: 38, label: "SQUARE" }, // the same square, drawn by another hand
      { x: 100, y: 20, width: 30, height: 30, label: "SQUARE" }, // alice's circle, labelled otherwise
      { x: 180, y: 100, width: 20, height: 20, label: "CIRCLE" }, // one alice did not draw
    ],
  };
  const d = unmatchedBoxes([alice, bob]);
  assert.deepEqual([...d[0]], [1]);
  assert.deepEqual([...d[1]], [1, 2]);
  assert.deepEqual(unmatchedBoxes([alice, { boxes: [] }]).map((s) => [...s]), [[0, 1], []], "an answer without boxes matches nothing");
  assert.deepEqual(unmatchedBoxes([alice, alice]).map((s) => s.size), [0, 0]);
  assert.deepEqual(unmatchedBoxes([{ choices: ["RED"] }]).map((s) => s.size), [0], "answers of other interfaces have none");
  const twice = { boxes: [square, { ...square, x: 11 }] };
  assert.deepEqual(unmatchedBoxes([twice, { boxes: [square] }]).map((s) => [...s]), [[1], []], "one square is not two");
  const third = { boxes: [square] };
  assert.deepEqual(unmatchedBoxes([alice, bob, third]).map((s) => [...s]), [[1], [1, 2], []], "against every other answer");
});
