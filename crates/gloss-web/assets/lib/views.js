// A tiny DOM builder: h("div", {class: "x", onclick}, child, ...). Text is always set as text,
// never parsed as HTML, so example texts cannot inject markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the contents of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function fmtRate(perHour) {
  return perHour >= 10 ? `${Math.round(perHour)}/h` : `${perHour.toFixed(1)}/h`;
}

export function pct(part, whole) {
  return whole ? Math.round((100 * part) / whole) : 0;
}

export function progressBar(part, whole, label) {
  // Set through the CSSOM: the content security policy refuses inline style attributes.
  const fill = h("div", { class: "fill" });
  fill.style.width = `${pct(part, whole)}%`;
  return h(
    "div",
    { class: "bar", role: "progressbar", "aria-valuenow": part, "aria-valuemax": whole, title: label || `${part} / ${whole}` },
    fill,
  );
}
