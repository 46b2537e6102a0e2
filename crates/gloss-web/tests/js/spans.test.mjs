// Span rules of the annotation view (run with `node --test`).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  addRelation,
  addSpan,
  codePointOffset,
  differences,
  keepRelations,
  relationIndices,
  relationsFrom,
  removeSpan,
  sliceCodePoints,
  snapToTokens,
  tokenRange,
} from "../../assets/lib/spans.js";

// "Alice Smith flew to Paris." as the server tokenises it (code points).
const TOKENS = [
  { text: "Alice", start: 0, end: 5 },
  { text: "Smith", start: 6, end: 11 },
  { text: "flew", start: 12, end: 16 },
  { text: "to", start: 17, end: 19 },
  { text: "Paris", start: 20, end: 25 },
  { text: ".", start: 25, end: 26 },
];

test("a selection inside or across tokens snaps outward to whole tokens", () => {
  assert.deepEqual(snapToTokens(TOKENS, 2, 8), { start: 0, end: 11, token_start: 0, token_end: 1 });
  assert.deepEqual(snapToTokens(TOKENS, 8, 2), { start: 0, end: 11, token_start: 0, token_end: 1 }, "backwards selections too");
  assert.deepEqual(snapToTokens(TOKENS, 20, 25), { start: 20, end: 25, token_start: 4, token_end: 4 });
  assert.deepEqual(snapToTokens(TOKENS, 21, 21), { start: 20, end: 25, token_start: 4, token_end: 4 }, "a caret picks its token");
});

test("a selection of whitespace only, or past the text, snaps to nothing", () => {
  assert.equal(snapToTokens(TOKENS, 5, 6), null);
  assert.equal(snapToTokens(TOKENS, 40, 50), null);
  assert.equal(snapToTokens([], 0, 3), null);
});

test("keyboard token ranges are clamped and ordered", () => {
  assert.deepEqual(tokenRange(TOKENS, 4, 2), { start: 12, end: 25, token_start: 2, token_end: 4 });
  assert.deepEqual(tokenRange(TOKENS, -3, 99), { start: 0, end: 26, token_start: 0, token_end: 5 });
  assert.equal(tokenRange([], 0, 0), null);
});

test("entity spans replace what they overlap; the spans interface keeps overlaps but not duplicates", () => {
  const person = { start: 0, end: 11, label: "PERSON" };
  const place = { start: 20, end: 25, label: "LOC" };
  let spans = addSpan([], place, false);
  spans = addSpan(spans, person, false);
  assert.deepEqual(spans.map((s) => s.label), ["PERSON", "LOC"], "sorted by start");
  spans = addSpan(spans, { start: 6, end: 16, label: "ORG" }, false);
  assert.deepEqual(spans.map((s) => s.label), ["ORG", "LOC"], "the overlapped PERSON is replaced");
  let multi = addSpan([person], { start: 6, end: 16, label: "ORG" }, true);
  assert.equal(multi.length, 2);
  multi = addSpan(multi, { ...person }, true);
  assert.equal(multi.length, 2, "the same span twice is kept once");
  assert.deepEqual(removeSpan(multi, 0), [multi[1]]);
});

test("offsets count code points like the server, not UTF-16 units", () => {
  const text = "😀 Zoë in 東京";
  assert.equal(codePointOffset(text, 2), 1, "the emoji is one code point, two UTF-16 units");
  assert.equal(codePointOffset(text, text.length), Array.from(text).length);
  assert.equal(sliceCodePoints(text, 2, 5), "Zoë");
  assert.equal(sliceCodePoints(text, 9, 11), "東京");
});

test("differences mark what not every annotator chose", () => {
  const a = { decision: "DECISION_ACCEPT", choices: ["A"], spans: [{ start: 0, end: 5, label: "PER" }, { start: 6, end: 8, label: "LOC" }] };
  const b = { decision: "DECISION_ACCEPT", choices: ["A", "B"], spans: [{ start: 0, end: 5, label: "PER" }] };
  const d = differences([a, b]);
  assert.equal(d.decisionsDiffer, false);
  assert.deepEqual([...d.spans[0]], ["6:8:LOC"]);
  assert.deepEqual([...d.spans[1]], []);
  assert.deepEqual([...d.choices[1]], ["B"]);
  assert.equal(differences([a, { ...b, decision: "DECISION_REJECT" }]).decisionsDiffer, true);
});

test("relations follow their spans by place through sorting, and die with them", () => {
  const alice = { start: 0, end: 11, label: "PER" };
  const paris = { start: 20, end: 25, label: "LOC" };
  // As the server sends them: indices into the answer's spans.
  const rels = relationsFrom([alice, paris], [{ head: 0, child: 1, label: "FLEW_TO" }]);
  assert.deepEqual(rels, [{ head: "0:11", child: "20:25", label: "FLEW_TO" }]);
  // A new span sorts before both; the indices sent back move with it.
  const spans = addSpan([alice, paris], { start: 12, end: 16, label: "LOC" }, false);
  assert.deepEqual(relationIndices(rels, spans), [{ head: 0, child: 2, label: "FLEW_TO" }]);
  // Replacing Paris by an overlapping span drops the relation that pointed at it.
  const replaced = addSpan(spans, { start: 17, end: 25, label: "LOC" }, false);
  assert.deepEqual(keepRelations(rels, replaced), []);
  assert.deepEqual(keepRelations(rels, removeSpan(spans, 0)), []);
});

test("a relation to itself or a repeated relation is not added", () => {
  const one = addRelation([], { head: "0:5", child: "6:11", label: "R" });
  assert.equal(one.length, 1);
  assert.equal(addRelation(one, { head: "0:5", child: "6:11", label: "R" }), one);
  assert.equal(addRelation(one, { head: "0:5", child: "0:5", label: "R" }), one);
  assert.equal(addRelation(one, { head: "6:11", child: "0:5", label: "R" }).length, 2, "the other direction is another relation");
});

test("differences mark relations not every annotator drew, whatever the span order", () => {
  const a = { decision: "DECISION_ACCEPT", spans: [{ start: 0, end: 5, label: "PER" }, { start: 6, end: 9, label: "ORG" }], relations: [{ head: 0, child: 1, label: "WORKS_AT" }] };
  const b = { decision: "DECISION_ACCEPT", spans: [{ start: 6, end: 9, label: "ORG" }, { start: 0, end: 5, label: "PER" }], relations: [{ head: 1, child: 0, label: "WORKS_AT" }, { head: 0, child: 1, label: "OWNS" }] };
  const d = differences([a, b]);
  assert.deepEqual([...d.relations[0]], []);
  assert.deepEqual([...d.relations[1]], ["6:9>0:5:OWNS"]);
});
