// The runs list: an inbox of runs waiting for a person, the filtered list (paged on
// the server), and live changes from /api/live.
"use strict";

(() => {
  const { el, api, clear } = Keel;
  const filters = document.getElementById("filters");
  const body = document.querySelector("#runs tbody");
  const inbox = document.querySelector("#inbox tbody");
  const more = document.getElementById("more");
  let cursor = null;
  let loading = 0;
  const shown = new Map(); // run id → row of the list

  function query() {
    const data = new FormData(filters);
    const params = new URLSearchParams();
    for (const name of ["status", "agent", "text"]) {
      const v = String(data.get(name) || "").trim();
      if (v) params.set(name, v);
    }
    const since = data.get("since");
    if (since) params.set("since", String(Date.now() - Number(since)));
    return params;
  }

  function matches(run) {
    const data = new FormData(filters);
    const status = String(data.get("status") || "");
    if (status && !status.split(",").includes(run.status)) return false;
    const agent = String(data.get("agent") || "");
    if (agent && run.agent !== agent) return false;
    const since = data.get("since");
    if (since && run.created_at < Date.now() - Number(since)) return false;
    const text = String(data.get("text") || "").trim().toLowerCase();
    return !text || run.id.includes(text) || run.agent.toLowerCase().includes(text) || run.title.toLowerCase().includes(text);
  }

  function link(run) {
    return el("a", { href: "/runs/" + run.id, class: "run-link" },
      el("code", { text: Keel.shortId(run.id) }), " ", el("span", { class: "title", text: run.title || "(no input)" }));
  }

  function row(run) {
    return el("tr", { "data-run": run.id, "data-status": run.status },
      el("td", {}, Keel.status(run.status)),
      el("td", { class: "run-cell" }, link(run), run.parent ? el("span", { class: "fork", text: " ⑂ fork" }) : null),
      el("td", { text: run.agent }),
      el("td", { class: "muted", text: run.model || "" }),
      el("td", { class: "num", text: run.turns }),
      el("td", { class: "num", title: `${run.input_tokens} in / ${run.output_tokens} out`, text: Keel.tokens(run.input_tokens + run.output_tokens) }),
      el("td", { class: "num", text: Keel.cost(run.cost_usd) }),
      el("td", { title: Keel.time(run.created_at), text: Keel.ago(run.created_at) }),
      el("td", { title: Keel.time(run.updated_at), text: Keel.ago(run.updated_at) }));
  }

  function inboxRow(run) {
    return el("tr", { "data-run": run.id },
      el("td", {}, Keel.status(run.status)),
      el("td", { class: "run-cell" }, link(run)),
      el("td", { text: run.agent }),
      el("td", { title: Keel.time(run.updated_at), text: Keel.ago(run.updated_at) }),
      el("td", {}, el("a", { class: "button", href: "/runs/" + run.id + "#approve", text: "Review" })));
  }

  async function loadInbox() {
    const page = await api("/api/runs?status=suspended&limit=200");
    clear(inbox);
    for (const run of page.runs) inbox.append(inboxRow(run));
    updateInboxCount();
  }

  function updateInboxCount() {
    const n = inbox.children.length;
    document.getElementById("inbox-section").hidden = n === 0;
    document.getElementById("inbox-count").textContent = String(n);
    document.title = (n ? `(${n}) ` : "") + "Keel — runs";
  }

  async function loadRuns(reset) {
    const ticket = ++loading;
    const params = query();
    params.set("limit", "50");
    if (!reset && cursor) params.set("cursor", cursor);
    const page = await api("/api/runs?" + params);
    if (ticket !== loading) return; // a newer query replaced this one
    if (reset) { clear(body); shown.clear(); }
    for (const run of page.runs) {
      const tr = row(run);
      shown.set(run.id, tr);
      body.append(tr);
    }
    cursor = page.next;
    more.hidden = !cursor;
    document.getElementById("total").textContent = page.total + (page.total === 1 ? " run" : " runs");
    document.getElementById("empty").hidden = page.total !== 0;
  }

  // A run appeared or changed (from the live feed).
  function changed(run) {
    const old = shown.get(run.id);
    if (old) {
      if (matches(run)) {
        const tr = row(run);
        old.replaceWith(tr);
        shown.set(run.id, tr);
      } else {
        old.remove();
        shown.delete(run.id);
      }
    } else if (matches(run)) {
      // New runs are the newest: they go on top.
      const tr = row(run);
      shown.set(run.id, tr);
      body.prepend(tr);
      document.getElementById("empty").hidden = true;
    }
    const waiting = inbox.querySelector(`tr[data-run="${run.id}"]`);
    if (run.status === "suspended") {
      const tr = inboxRow(run);
      if (waiting) waiting.replaceWith(tr); else inbox.prepend(tr);
    } else if (waiting) {
      waiting.remove();
    }
    updateInboxCount();
  }

  function live() {
    const badge = document.getElementById("live");
    const source = new EventSource("/api/live");
    source.addEventListener("open", () => { badge.textContent = "live"; badge.className = "live on"; });
    source.addEventListener("error", () => { badge.textContent = "reconnecting…"; badge.className = "live off"; });
    source.addEventListener("run", (e) => changed(JSON.parse(e.data)));
  }

  async function loadAgents() {
    const { agents } = await api("/api/agents");
    const filter = filters.elements.agent;
    const start = document.getElementById("start").elements.agent;
    for (const name of agents) {
      filter.append(el("option", { value: name, text: name }));
      start.append(el("option", { value: name, text: name }));
    }
  }

  function report(e) { Keel.notice(e.message || String(e)); }

  let typing = null;
  filters.addEventListener("input", (e) => {
    clearTimeout(typing);
    typing = setTimeout(() => loadRuns(true).catch(report), e.target.name === "text" ? 200 : 0);
  });
  filters.addEventListener("submit", (e) => e.preventDefault());
  more.addEventListener("click", () => loadRuns(false).catch(report));
  document.getElementById("start").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = e.target;
    try {
      const { run } = await api("/api/runs", { body: { agent: form.elements.agent.value, input: form.elements.input.value } });
      location.href = "/runs/" + run;
    } catch (err) { report(err); }
  });

  live();
  Promise.all([loadAgents(), loadInbox(), loadRuns(true)]).catch(report);
})();
