// Span rules the annotation view needs: snapping a selection to token boundaries, adding and
// removing spans, and which parts of several answers differ. Pure functions (unit-tested with
// `node --test`); offsets are Unicode code points, as the server counts them.

/** Code-point offset of a UTF-16 offset into `text`. */
export function codePointOffset(text, utf16) {
  let cp = 0;
  for (let i = 0; i < utf16 && i < text.length; i++) {
    const c = text.charCodeAt(i);
    // A high surrogate starts a pair that counts once.
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) i++;
    cp++;
  }
  return cp;
}

/**
 * Snaps a character range [start, end) to whole tokens: every token the range touches is
 * included. Returns null when the range covers no token (only whitespace, or empty).
 */
export function snapToTokens(tokens, start, end) {
  if (end < start) [start, end] = [end, start];
  let first = -1;
  let last = -1;
  tokens.forEach((t, i) => {
    const touches = start === end ? t.start <= start && start < t.end : t.start < end && start < t.end;
    if (touches) {
      if (first < 0) first = i;
      last = i;
    }
  });
  if (first < 0) return null;
  return { start: tokens[first].start, end: tokens[last].end, token_start: first, token_end: last };
}

/** Snaps an inclusive token range (in any order) to a span. */
export function tokenRange(tokens, a, b) {
  const lo = Math.max(0, Math.min(a, b));
  const hi = Math.min(tokens.length - 1, Math.max(a, b));
  if (tokens.length === 0 || lo > hi) return null;
  return { start: tokens[lo].start, end: tokens[hi].end, token_start: lo, token_end: hi };
}

export function overlaps(a, b) {
  return a.start < b.end && b.start < a.end;
}

/**
 * Adds a labelled span. Entity interfaces (`allowOverlap` false) replace every span the new one
 * overlaps; the spans interface keeps them, but never two identical spans. Returns a new array,
 * sorted by start then end.
 */
export function addSpan(spans, span, allowOverlap) {
  const kept = spans.filter((s) =>
    allowOverlap ? !(s.start === span.start && s.end === span.end && s.label === span.label) : !overlaps(s, span),
  );
  kept.push(span);
  return sortSpans(kept);
}

/** Removes the span at index `i`. */
export function removeSpan(spans, i) {
  return spans.filter((_, j) => j !== i);
}

export function sortSpans(spans) {
  return [...spans].sort((a, b) => a.start - b.start || a.end - b.end || (a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
}

/** Slice of `text` between code-point offsets. */
export function sliceCodePoints(text, start, end) {
  return Array.from(text).slice(start, end).join("");
}

const spanKey = (s) => `${s.start}:${s.end}:${s.label}`;

/** Where a span is ("start:end"): relations name their ends by place, so they survive re-sorting. */
export const spanPlace = (s) => `${s.start}:${s.end}`;

/** Relations by index into `spans` (as the server sends them) to relations by span place. */
export function relationsFrom(spans, relations) {
  const out = [];
  for (const r of relations || []) {
    const head = (spans || [])[r.head];
    const child = (spans || [])[r.child];
    if (head && child) out.push({ head: spanPlace(head), child: spanPlace(child), label: r.label });
  }
  return out;
}

/** The relations whose two ends are still among `spans`. */
export function keepRelations(relations, spans) {
  const places = new Set(spans.map(spanPlace));
  return relations.filter((r) => places.has(r.head) && places.has(r.child));
}

/** Adds a relation unless it exists or relates a span to itself; returns a new array. */
export function addRelation(relations, rel) {
  if (rel.head === rel.child) return relations;
  if (relations.some((r) => r.head === rel.head && r.child === rel.child && r.label === rel.label)) return relations;
  return [...relations, rel];
}

/** Relations by span place to relations by index into `spans`, for the answer. */
export function relationIndices(relations, spans) {
  const index = new Map(spans.map((s, i) => [spanPlace(s), i]));
  return relations
    .filter((r) => index.has(r.head) && index.has(r.child))
    .map((r) => ({ head: index.get(r.head), child: index.get(r.child), label: r.label }));
}

/** A relation of an answer as a comparable key: the two ends' places and the label. */
const relationKey = (a, r) => {
  const head = (a.spans || [])[r.head];
  const child = (a.spans || [])[r.child];
  return head && child ? `${spanPlace(head)}>${spanPlace(child)}:${r.label}` : "";
};

/**
 * What differs between answers, for the reviewer: for each answer, the span keys and choice
 * labels that not every answer shares, plus whether the decisions differ.
 */
export function differences(answers) {
  const count = (keysOf) => {
    const seen = new Map();
    for (const a of answers) for (const k of new Set(keysOf(a))) seen.set(k, (seen.get(k) || 0) + 1);
    return seen;
  };
  const spanCounts = count((a) => (a.spans || []).map(spanKey));
  const choiceCounts = count((a) => a.choices || []);
  const relKeys = (a) => (a.relations || []).map((r) => relationKey(a, r));
  const relationCounts = count(relKeys);
  const n = answers.length;
  return {
    decisionsDiffer: new Set(answers.map((a) => a.decision)).size > 1,
    spans: answers.map((a) => new Set((a.spans || []).map(spanKey).filter((k) => spanCounts.get(k) < n))),
    choices: answers.map((a) => new Set((a.choices || []).filter((c) => choiceCounts.get(c) < n))),
    relations: answers.map((a) => new Set(relKeys(a).filter((k) => relationCounts.get(k) < n))),
  };
}

export { spanKey, relationKey };
