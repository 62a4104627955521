// Keel dashboard: helpers shared by the pages. Every text from a model, a tool or a
// person is set with textContent (never as HTML).
"use strict";

const Keel = (() => {
  // Builds an element: el("div", {class: "x", onclick: f}, child, "text", …).
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "text") node.textContent = String(v);
      else if (k === "class") node.className = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "text") node.textContent = String(v);
      else node.setAttribute(k, String(v));
    }
    for (const c of children.flat()) if (c) node.append(c);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.error && body.error.message) || "HTTP " + status);
      this.status = status;
      this.kind = body && body.error && body.error.kind;
    }
  }

  // Calls the API. Writes carry the CSRF header; the session cookie authenticates.
  async function api(path, options) {
    const init = { credentials: "same-origin", headers: {} };
    if (options && options.body !== undefined) {
      init.method = options.method || "POST";
      init.headers["content-type"] = "application/json";
      init.headers["x-keel-csrf"] = "1";
      init.body = JSON.stringify(options.body);
    }
    const response = await fetch(path, init);
    const text = await response.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (_) { body = text; }
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }

  // The variant of an externally tagged value: {"Name": body} → ["Name", body].
  function variant(value) {
    if (value === null || value === undefined) return [null, null];
    if (typeof value === "string") return [value, null];
    const keys = Object.keys(value);
    return keys.length === 1 ? [keys[0], value[keys[0]]] : [null, value];
  }

  function pad(n) { return String(n).padStart(2, "0"); }

  function time(ms) {
    if (!ms) return "";
    const d = new Date(ms);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function clock(ms) {
    const d = new Date(ms);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, "0")}`;
  }

  function ago(ms) {
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return s + "s ago";
    if (s < 3600) return Math.round(s / 60) + "m ago";
    if (s < 86400) return Math.round(s / 3600) + "h ago";
    return Math.round(s / 86400) + "d ago";
  }

  function duration(ms) {
    if (ms === null || ms === undefined || isNaN(ms)) return "";
    if (ms < 1000) return ms + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + " s";
    const m = Math.floor(ms / 60000);
    return m + "m " + Math.round((ms % 60000) / 1000) + "s";
  }

  function tokens(n) {
    if (n === null || n === undefined) return "";
    if (n < 1000) return String(n);
    if (n < 1e6) return (n / 1000).toFixed(n < 10000 ? 1 : 0) + "k";
    return (n / 1e6).toFixed(2) + "M";
  }

  function cost(usd) {
    if (usd === null || usd === undefined) return "—";
    if (usd === 0) return "$0";
    return usd < 0.01 ? "$" + usd.toFixed(4) : "$" + usd.toFixed(2);
  }

  function status(s) {
    const label = s === "suspended" ? "waiting" : s;
    return el("span", { class: "status status-" + s, text: label });
  }

  function shortId(id) { return String(id).slice(0, 8); }

  function callId(c) {
    if (!c) return "";
    return typeof c === "string" ? c : c.turn + "." + c.index;
  }

  // Shows an error where the page shows news.
  function notice(message, kind) {
    const box = document.getElementById("notice");
    if (!box) return;
    clear(box);
    if (message) box.append(el("div", { class: "notice " + (kind || "error"), text: message }));
  }

  return { el, svg, append, clear, api, ApiError, variant, time, clock, ago, duration, tokens, cost, status, shortId, callId, notice };
})();
