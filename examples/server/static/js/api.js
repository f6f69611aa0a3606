// A small client for the server's JSON API. Every answer, error or not, is
// { ok, status, body, headers }: the UI shows what the server said.

export async function request(method, path, body) {
  const init = { method, headers: { Accept: "application/json" } };
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
