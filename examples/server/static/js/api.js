// A small client for the server's JSON API. Every answer, error or not, is
// { ok, status, body, headers }: the UI shows what the server said.

// The API key, when the server asks for one: kept in sessionStorage, so it
// lives as long as this tab and is never written to disk by the page.
const KEY_ITEM = "ingest-api-key";

export function apiKey() {
  return sessionStorage.getItem(KEY_ITEM);
}

export function setApiKey(token) {
  if (token) sessionStorage.setItem(KEY_ITEM, token);
  else sessionStorage.removeItem(KEY_ITEM);
}

// Called with each 401 answer: the page asks for a key.
let unauthorized = () => {};
export function onUnauthorized(handler) {
  unauthorized = handler;
}

export async function request(method, path, body) {
  const init = { method, headers: { Accept: "application/json" } };
  const key = apiKey();
  if (key) init.headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    return { ok: false, status: 0, body: { message: `the server cannot be reached (${e.message})` }, headers: new Headers() };
  }
  let parsed;
  try {
    parsed = await res.json();
  } catch {
    parsed = { message: `the server answered ${res.status} without JSON` };
  }
  if (res.status === 401) unauthorized(parsed);
  return { ok: res.ok, status: res.status, body: parsed, headers: res.headers };
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body);

/** `path` with the non-empty entries of `params` as its query string. */
export function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && String(v).trim() !== "") q.set(k, String(v).trim());
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}
