// ui.js: small DOM helpers for the console's pages, shared with the
// app's pages (ctx.ui).

// h builds an element: h("button", {testid: "scan", onclick}, "Scan").
// testid sets data-testid; on* attributes are listeners; a child that is
// null or false is skipped.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "testid") el.dataset.testid = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k in el && k !== "list") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// clear empties an element and appends the children.
export function fill(el, ...children) {
  el.replaceChildren();
  for (const c of children.flat()) if (c) el.append(c instanceof Node ? c : String(c));
  return el;
}

export function time(ms) {
  return ms ? new Date(ms).toLocaleString() : "";
}

export function short(s, n = 12) {
  return s && s.length > n ? s.slice(0, n) + "…" : s || "";
}

// pill is a status word in its colour.
export function pill(status, text) {
  return h("span", { className: `pill ${status}` }, text || status);
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  el.append(...children);
  return el;
}

// chart draws series of {t, ms} points over the same time axis, on a
// logarithmic ms axis (steps take milliseconds, finality tens or
// hundreds): [{name, cls, points}]. width and height in px.
export function chart(series, width = 320, height = 140) {
  const pad = { l: 34, r: 6, t: 6, b: 16 };
  const all = series.flatMap((s) => s.points);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  if (all.length === 0) {
    root.append(svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "muted" }, "no samples yet"));
    return root;
  }
  const t0 = Math.min(...all.map((p) => p.t)), t1 = Math.max(...all.map((p) => p.t), t0 + 1);
  const lo = 0.1, hi = 10 ** Math.ceil(Math.log10(Math.max(10, ...all.map((p) => p.ms)) * 1.2));
  const x = (t) => pad.l + ((t - t0) / (t1 - t0)) * (width - pad.l - pad.r);
  const y = (ms) => height - pad.b - (Math.log10(Math.max(ms, lo) / lo) / Math.log10(hi / lo)) * (height - pad.t - pad.b);
  for (const v of [1, 10, 100, 1000, 10000, 100000]) {
    if (v > hi) break;
    root.append(svg("line", { x1: pad.l, x2: width - pad.r, y1: y(v), y2: y(v), class: "grid" }),
      svg("text", { x: pad.l - 3, y: y(v) + 3, "text-anchor": "end", class: "axis" }, v >= 1000 ? `${v / 1000}s` : `${v}ms`));
  }
  for (const s of series) {
    for (const p of s.points) root.append(svg("circle", { cx: x(p.t), cy: y(p.ms), r: 2.2, class: s.cls }, svg("title", {}, `${s.name} ${p.ms.toFixed(1)} ms`)));
  }
  return root;
}
