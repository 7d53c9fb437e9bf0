import { document, el, polyline, text } from "./svg.ts";

// Line charts for the benchmark: one panel per quantity, one line per method, a shared legend.

export interface Series {
  label: string;
  points: [number, number][];
  /** Drawn thicker and in black: the product among the baselines. */
  emphasis?: boolean;
  /** Drawn dashed: a reference such as the oracle's frontier. */
  dashed?: boolean;
  /** Each point also drawn as a dot (a series of a few points, one per control-plane level). */
  dots?: boolean;
}

export interface Panel {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** A horizontal reference line, e.g. the 1 s bystander SLO. */
  reference?: { y: number; label: string };
  /** Vertical lines at moments worth pointing at (the stressor's second writer starting). */
  markers?: { x: number; label: string }[];
}

/** Okabe–Ito colours minus yellow (unreadable on white), black (the emphasised series) and vermillion (the reference line), then greys. */
const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#777777", "#8C564B", "#BBBBBB"];
const EMPHASIS_COLOUR = "#000000";
const REFERENCE_COLOUR = "#D55E00";
const WIDTH = 900;
const PANEL_HEIGHT = 320;
const MARGIN = { left: 70, right: 20, top: 36, bottom: 46 };
const LEGEND_ROW = 18;
const TICKS = 5;

/** A round step (1, 2 or 5 × 10^k) that gives about `count` ticks over `span`. */
function niceStep(span: number, count: number): number {
  const raw = span / Math.max(1, count);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const residual = raw / magnitude;
  return (residual > 5 ? 10 : residual > 2 ? 5 : residual > 1 ? 2 : 1) * magnitude;
}

function formatTick(v: number): string {
  return Math.abs(v) >= 1000 ? `${Math.round(v / 100) / 10}k` : String(Math.round(v * 100) / 100);
}

function panel(p: Panel, top: number, colours: Map<string, string>): string[] {
  const all = p.series.flatMap((s) => s.points);
  const xMax = Math.max(1, ...all.map(([x]) => x));
  const yMax = Math.max(1, ...all.map(([, y]) => y), p.reference ? p.reference.y * 1.1 : 0);
  const xStep = niceStep(xMax, TICKS * 2);
  const yStep = niceStep(yMax, TICKS);
  const xTop = Math.ceil(xMax / xStep) * xStep;
  const yTop = Math.ceil(yMax / yStep) * yStep;
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = PANEL_HEIGHT - MARGIN.top - MARGIN.bottom;
  const sx = (x: number) => MARGIN.left + (x / xTop) * plotW;
  const sy = (y: number) => top + MARGIN.top + plotH - (y / yTop) * plotH;
  const out: string[] = [text(MARGIN.left, top + 22, p.title, { "font-size": 15, "font-weight": "bold" })];
  for (let y = 0; y <= yTop + 1e-9; y += yStep) {
    out.push(el("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: sy(y), y2: sy(y), stroke: "#e5e5e5" }));
    out.push(text(MARGIN.left - 8, sy(y) + 4, formatTick(y), { "text-anchor": "end", fill: "#444" }));
  }
  for (let x = 0; x <= xTop + 1e-9; x += xStep) {
    out.push(el("line", { x1: sx(x), x2: sx(x), y1: sy(0), y2: sy(0) + 5, stroke: "#444" }));
    out.push(text(sx(x), sy(0) + 18, formatTick(x), { "text-anchor": "middle", fill: "#444" }));
  }
  out.push(el("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: sy(0), y2: sy(0), stroke: "#444" }));
  out.push(el("line", { x1: MARGIN.left, x2: MARGIN.left, y1: sy(0), y2: sy(yTop), stroke: "#444" }));
  out.push(text(MARGIN.left + plotW / 2, sy(0) + 38, p.xLabel, { "text-anchor": "middle" }));
  out.push(text(18, sy(yTop / 2), p.yLabel, { "text-anchor": "middle", transform: `rotate(-90 18 ${sy(yTop / 2)})` }));
  if (p.reference) {
    out.push(el("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: sy(p.reference.y), y2: sy(p.reference.y), stroke: REFERENCE_COLOUR, "stroke-dasharray": "6 4" }));
    out.push(text(WIDTH - MARGIN.right - 4, sy(p.reference.y) - 5, p.reference.label, { "text-anchor": "end", fill: REFERENCE_COLOUR }));
  }
  for (const m of p.markers ?? []) {
    out.push(el("line", { x1: sx(m.x), x2: sx(m.x), y1: sy(0), y2: sy(yTop), stroke: "#444", "stroke-dasharray": "3 3" }));
    out.push(text(sx(m.x) + 4, sy(yTop) + 12, m.label, { fill: "#444" }));
  }
  for (const s of p.series) {
    if (s.points.length === 0) continue;
    const colour = colours.get(s.label) ?? EMPHASIS_COLOUR;
    out.push(polyline(s.points.map(([x, y]) => [sx(x), sy(Math.min(y, yTop))]), { stroke: colour, "stroke-width": s.emphasis ? 3 : 2, "stroke-dasharray": s.dashed ? "8 4" : undefined }));
    if (s.dots) for (const [x, y] of s.points) out.push(el("circle", { cx: sx(x).toFixed(1), cy: sy(Math.min(y, yTop)).toFixed(1), r: 4, fill: colour }));
  }
  return out;
}

export function renderChart(title: string, panels: readonly Panel[]): string {
  const labels = [...new Set(panels.flatMap((p) => p.series.map((s) => s.label)))];
  const emphasised = new Set(panels.flatMap((p) => p.series.filter((s) => s.emphasis).map((s) => s.label)));
  const colours = new Map<string, string>();
  let next = 0;
  for (const l of labels) colours.set(l, emphasised.has(l) ? EMPHASIS_COLOUR : PALETTE[next++ % PALETTE.length]!);
  const legendTop = 40 + panels.length * PANEL_HEIGHT;
  const height = legendTop + labels.length * LEGEND_ROW + 20;
  const children = [text(MARGIN.left, 26, title, { "font-size": 17, "font-weight": "bold" })];
  panels.forEach((p, i) => children.push(...panel(p, 30 + i * PANEL_HEIGHT, colours)));
  labels.forEach((label, i) => {
    const y = legendTop + i * LEGEND_ROW;
    children.push(el("line", { x1: MARGIN.left, x2: MARGIN.left + 28, y1: y, y2: y, stroke: colours.get(label) ?? "#000", "stroke-width": 3 }));
    children.push(text(MARGIN.left + 36, y + 4, label));
  });
  return document(WIDTH, height, children);
}
