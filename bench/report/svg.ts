// A very small SVG writer: elements as strings with escaped attributes and text. Text uses generic
// font families only, so the chart renders the same offline, with no web fonts to fetch.

export const FONT_FAMILY = "DejaVu Sans, Helvetica, Arial, sans-serif";

type Attrs = Record<string, string | number | undefined>;

function escape(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function attrs(a: Attrs): string {
  return Object.entries(a)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => ` ${k}="${escape(String(v))}"`)
    .join("");
}

export function el(name: string, a: Attrs, children: string[] | string = []): string {
  const inner = Array.isArray(children) ? children.join("") : escape(children);
  return inner ? `<${name}${attrs(a)}>${inner}</${name}>` : `<${name}${attrs(a)}/>`;
}

export function text(x: number, y: number, content: string, a: Attrs = {}): string {
  return el("text", { x, y, "font-family": FONT_FAMILY, "font-size": 12, ...a }, content);
}

export function polyline(points: readonly [number, number][], a: Attrs): string {
  return el("polyline", { points: points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" "), fill: "none", ...a });
}

export function document(width: number, height: number, children: string[]): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n${el("svg", { xmlns: "http://www.w3.org/2000/svg", width, height, viewBox: `0 0 ${width} ${height}` }, [
    el("rect", { x: 0, y: 0, width, height, fill: "white" }),
    ...children,
  ])}\n`;
}
