// Small SVG charts drawn in the page (no chart library, nothing from a CDN).

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** Horizontal bars: rows [{label, value (0..1 or null), note}]. */
export function barChart(rows, { width = 420, title = "" } = {}) {
  const rowH = 22;
  const labelW = 120;
  const height = rows.length * rowH + 24;
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title, class: "chart" });
  root.append(svg("text", { x: 0, y: 14, class: "chart-title" }, title));
  rows.forEach((r, i) => {
    const y = 24 + i * rowH;
    root.append(svg("text", { x: 0, y: y + 14, class: "chart-label" }, r.label));
    const w = r.value === null || r.value === undefined ? 0 : Math.max(0, Math.min(1, r.value)) * (width - labelW - 60);
    root.append(svg("rect", { x: labelW, y: y + 3, width: w, height: rowH - 8, class: "chart-bar" }));
    const text = r.value === null || r.value === undefined ? "n/a" : r.value.toFixed(3);
    root.append(svg("text", { x: labelW + w + 6, y: y + 14, class: "chart-value" }, r.note ? `${text} ${r.note}` : text));
  });
  return root;
}

/** Lines over shared x values: series [{name, points: [[x, y]...]}]; y in 0..1. */
export function lineChart(series, { width = 420, height = 220, title = "", xLabel = "" } = {}) {
  const pad = { l: 36, r: 90, t: 22, b: 30 };
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const sx = (x) => pad.l + ((x - x0) / (x1 - x0 || 1)) * (width - pad.l - pad.r);
  const sy = (y) => height - pad.b - y * (height - pad.t - pad.b);
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title, class: "chart" });
  root.append(svg("text", { x: 0, y: 14, class: "chart-title" }, title));
  for (const y of [0, 0.5, 1]) {
    root.append(svg("line", { x1: pad.l, x2: width - pad.r, y1: sy(y), y2: sy(y), class: "chart-grid" }));
    root.append(svg("text", { x: 4, y: sy(y) + 4, class: "chart-label" }, y.toFixed(1)));
  }
  root.append(svg("text", { x: pad.l, y: height - 6, class: "chart-label" }, xLabel));
  series.forEach((s, i) => {
    const d = s.points.map((p, j) => `${j ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ");
    root.append(svg("path", { d, class: `chart-line s${i % 4}` }));
    for (const p of s.points) root.append(svg("circle", { cx: sx(p[0]), cy: sy(p[1]), r: 3, class: `chart-dot s${i % 4}` }));
    const last = s.points[s.points.length - 1];
    if (last) root.append(svg("text", { x: sx(last[0]) + 4, y: sy(last[1]) + 4, class: `chart-value s${i % 4}` }, s.name));
  });
  return root;
}
