// The only way this page builds DOM: every value becomes a text node, so
// untrusted event text can never become markup or script.

/**
 * Create an element. `attrs` values are set as attributes (never event
 * handlers); children are nodes, or anything else, which becomes text.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) throw new Error(`refusing to set ${k} as an attribute`);
    el.setAttribute(k, v === true ? "" : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replace every child of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

export const $ = (sel, root = document) => root.querySelector(sel);

const numberFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

export function fmtNumber(n) {
  if (n === null || n === undefined) return "–";
  if (typeof n !== "number") return String(n);
  return numberFormat.format(n);
}

/** Canonical timestamps are UTC with milliseconds; show them shorter. */
export function fmtTime(ts) {
  if (typeof ts !== "string") return String(ts ?? "");
  return ts.replace("T", " ").replace(/\.000Z$/, "Z");
}

export function toJson(value) {
  return JSON.stringify(value, null, 2);
}
