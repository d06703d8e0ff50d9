// Small SVG charts for the dashboard (no libraries: the page loads nothing from elsewhere).
// Every label is set with textContent, so job data can never inject markup.
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  // Strategies get the categorical palette; objectives a muted one of their own, so a weight
  // bar is never mistaken for a strategy.
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                   "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const OBJECTIVE_PALETTE = ["#4c566a", "#b48ead", "#a3be8c", "#d08770", "#88c0d0", "#ebcb8b"];
  const color = (i) => PALETTE[i % PALETTE.length];
  const objectiveColor = (i) => OBJECTIVE_PALETTE[i % OBJECTIVE_PALETTE.length];
  // A strategy's colour depends on its label alone, so it is the same in every chart, every
  // job and every comparison: the registry's strategies have fixed ones, other labels (with
  // settings, single:<objective>) one from a hash of the label.
  const KNOWN_STRATEGIES = ["tapweight", "uniform", "no_cp", "grid", "optuna", "mometas",
                            "meta_tartan", "luo"];
  function strategyColor(label) {
    const known = KNOWN_STRATEGIES.indexOf(label);
    if (known >= 0) return color(known);
    let hash = 0;
    for (const char of label) hash = (hash * 31 + char.codePointAt(0)) >>> 0;
    return color(hash);
  }

  function el(tag, attrs, parent) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }

  function label(parent, x, y, str, attrs) {
    const node = el("text", { x, y, ...attrs }, parent);
    node.textContent = str;
    return node;
  }

  function scale([d0, d1], [r0, r1]) {
    const span = d1 - d0 || 1;
    return (v) => r0 + ((v - d0) / span) * (r1 - r0);
  }

  function ticks(min, max, count = 5) {
    if (!(isFinite(min) && isFinite(max))) return [];
    if (min === max) { min -= 1; max += 1; }
    const raw = (max - min) / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    const out = [];
    for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) {
      out.push(Number(v.toPrecision(12)));
    }
    return out;
  }

  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : Number(v.toPrecision(4)).toString();
  }

  // An SVG with margins, y axis and grid; returns the pieces charts draw into.
  function frame(container, { yDomain, yLabel, height = 240, width = 460, bottom = 40 }) {
    container.replaceChildren();
    const m = { top: 12, right: 12, bottom, left: 56 };
    const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "svg-chart" }, container);
    const [x0, x1, y0, y1] = [m.left, width - m.right, height - m.bottom, m.top];
    let [lo, hi] = yDomain;
    if (lo === hi) { lo -= 1; hi += 1; }
    const yTicks = ticks(lo, hi);
    lo = Math.min(lo, yTicks[0] ?? lo);
    hi = Math.max(hi, yTicks[yTicks.length - 1] ?? hi);
    const y = scale([lo, hi], [y0, y1]);
    for (const t of yTicks) {
      el("line", { x1: x0, x2: x1, y1: y(t), y2: y(t), class: "grid" }, svg);
      label(svg, x0 - 6, y(t) + 4, fmt(t), { "text-anchor": "end", class: "tick" });
    }
    el("line", { x1: x0, x2: x0, y1: y0, y2: y1, class: "axis" }, svg);
    el("line", { x1: x0, x2: x1, y1: y0, y2: y0, class: "axis" }, svg);
    if (yLabel) {
      label(svg, 12, (y0 + y1) / 2, yLabel, {
        transform: `rotate(-90 12 ${(y0 + y1) / 2})`, "text-anchor": "middle", class: "axis-label",
      });
    }
    return { svg, x0, x1, y0, y1, y, width, height };
  }

  function legend(container, names, colors) {
    const box = document.createElement("div");
    box.className = "legend";
    names.forEach((name, i) => {
      const item = document.createElement("span");
      const swatch = document.createElement("i");
      swatch.className = "swatch";
      swatch.style.background = colors[i];
      item.append(swatch, document.createTextNode(name));
      box.appendChild(item);
    });
    container.appendChild(box);
  }

  function empty(container, message) {
    container.replaceChildren();
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = message;
    container.appendChild(p);
  }

  // One bar per category with an error bar (± error); ``best`` (an index) is outlined.
  function bars(container, { categories, values, errors, yLabel, colors, best }) {
    const present = values.map((v, i) => [v, errors[i] || 0]).filter(([v]) => v !== null && isFinite(v));
    if (!present.length) return empty(container, "no finished trials yet");
    const lo = Math.min(0, ...present.map(([v, e]) => v - e));
    const hi = Math.max(...present.map(([v, e]) => v + e)) * 1.08;  // room for the labels
    const f = frame(container, { yDomain: [lo, hi], yLabel, bottom: 56 });
    const band = (f.x1 - f.x0) / categories.length;
    categories.forEach((name, i) => {
      const cx = f.x0 + band * (i + 0.5);
      const v = values[i];
      const e = errors[i] || 0;
      if (v !== null && isFinite(v)) {
        const top = f.y(Math.max(v, 0)), base = f.y(Math.min(v, 0));
        const bar = el("rect", { x: cx - band * 0.3, width: band * 0.6, y: top, height: Math.max(base - top, 1), fill: colors ? colors[i] : color(i), class: i === best ? "bar best" : "bar" }, f.svg);
        el("title", {}, bar).textContent = `${name}: ${fmt(v)} ± ${fmt(e)}`;
        if (e > 0) {
          el("line", { x1: cx, x2: cx, y1: f.y(v - e), y2: f.y(v + e), class: "errorbar" }, f.svg);
          for (const end of [v - e, v + e]) {
            el("line", { x1: cx - 6, x2: cx + 6, y1: f.y(end), y2: f.y(end), class: "errorbar" }, f.svg);
          }
        }
        label(f.svg, cx + band * 0.3, f.y(Math.max(v, 0) + e) - 4, fmt(v), { "text-anchor": "end", class: "value" });
      }
      label(f.svg, cx, f.y0 + 16, i === best ? `★ ${name}` : name, { "text-anchor": "middle", class: "category" });
    });
  }

  // Groups (strategies) side by side, one bar per series (objective) in each group.
  function groupedBars(container, { groups, series, values, yLabel }) {
    if (!groups.length) return empty(container, "no learned weights yet");
    const f = frame(container, { yDomain: [0, Math.max(1e-9, ...values.flat().filter(isFinite))], yLabel, bottom: 56 });
    const band = (f.x1 - f.x0) / groups.length;
    const inner = (band * 0.8) / series.length;
    groups.forEach((group, g) => {
      const start = f.x0 + band * g + band * 0.1;
      series.forEach((name, s) => {
        const v = values[g][s];
        if (v === null || !isFinite(v)) return;
        const rect = el("rect", { x: start + inner * s, width: inner * 0.9, y: f.y(v), height: Math.max(f.y0 - f.y(v), 1), fill: objectiveColor(s), class: "bar" }, f.svg);
        el("title", {}, rect).textContent = `${group} · ${name}: ${fmt(v)}`;
      });
      label(f.svg, f.x0 + band * (g + 0.5), f.y0 + 16, group, { "text-anchor": "middle", class: "category" });
    });
    legend(container, series, series.map((_, s) => objectiveColor(s)));
  }

  // Lines over x; each series is {name, points: [[x, y], ...]}.
  function lines(container, { series, xLabel, yLabel, yDomain, width = 300, height = 200 }) {
    const pts = series.flatMap((s) => s.points);
    if (!pts.length) return empty(container, "no trajectory");
    const xs = pts.map((p) => p[0]);
    const f = frame(container, { yDomain: yDomain || [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))], yLabel, width, height });
    const x = scale([Math.min(...xs), Math.max(...xs)], [f.x0 + 4, f.x1 - 4]);
    for (const t of ticks(Math.min(...xs), Math.max(...xs), 4)) {
      label(f.svg, x(t), f.y0 + 14, fmt(t), { "text-anchor": "middle", class: "tick" });
    }
    label(f.svg, (f.x0 + f.x1) / 2, f.height - 4, xLabel, { "text-anchor": "middle", class: "axis-label" });
    series.forEach((s, i) => {
      const d = s.points.map((p, k) => `${k ? "L" : "M"}${x(p[0]).toFixed(1)},${f.y(p[1]).toFixed(1)}`).join("");
      el("path", { d, stroke: objectiveColor(i), class: "line" }, f.svg);
      if (s.points.length === 1) {
        el("circle", { cx: x(s.points[0][0]), cy: f.y(s.points[0][1]), r: 3, fill: objectiveColor(i) }, f.svg);
      }
    });
  }

  // Points {x, y, group, title}; one colour per group.
  function scatter(container, { points, groups, xLabel, yLabel, colors }) {
    const paint = (i) => (colors ? colors[i] : color(i));
    const ok = points.filter((p) => isFinite(p.x) && isFinite(p.y));
    if (!ok.length) return empty(container, "no finished trials yet");
    const ys = ok.map((p) => p.y), xs = ok.map((p) => p.x);
    const pad = (Math.max(...ys) - Math.min(...ys)) * 0.08 || 1;
    const f = frame(container, { yDomain: [Math.min(...ys) - pad, Math.max(...ys) + pad], yLabel });
    const [xLo, xHi] = [Math.min(0, ...xs), Math.max(...xs)];
    const xTicks = ticks(xLo, xHi, 5);
    const x = scale([Math.min(xLo, xTicks[0]), Math.max(xHi, xTicks[xTicks.length - 1])], [f.x0 + 6, f.x1 - 6]);
    for (const t of xTicks) label(f.svg, x(t), f.y0 + 14, fmt(t), { "text-anchor": "middle", class: "tick" });
    label(f.svg, (f.x0 + f.x1) / 2, f.height - 4, xLabel, { "text-anchor": "middle", class: "axis-label" });
    for (const p of ok) {
      const dot = el("circle", { cx: x(p.x), cy: f.y(p.y), r: 5, fill: paint(groups.indexOf(p.group)), class: "dot" }, f.svg);
      el("title", {}, dot).textContent = p.title;
    }
    legend(container, groups, groups.map((_, i) => paint(i)));
  }

  return { bars, groupedBars, lines, scatter, legend, empty, color, objectiveColor, strategyColor, fmt };
})();
