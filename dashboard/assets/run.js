// A run's page: its summary, the approval panel, and the trace, timeline, graph and
// raw events of the loaded part of its log (the most recent part first; earlier
// parts on demand), all kept live over Server-Sent Events.
"use strict";

(() => {
  const { el, api, variant } = Keel;
  const id = decodeURIComponent(location.pathname.split("/").filter(Boolean)[1] || "");
  const PAGE = 500;
  const state = {
    run: null, waiting: [], children: [],
    entries: [], // loaded events, in seq order, contiguous: [from, to)
    from: 0, to: 0,
    lives: new Map(), // turn → { text, thinking, retry } while the model answers
    tab: (location.hash.replace("#", "") || "trace"),
    ended: false,
  };
  if (!["trace", "timeline", "graph", "events"].includes(state.tab)) state.tab = "trace";

  function report(e) { Keel.notice(e.message || String(e)); }

  // ---- summary -----------------------------------------------------------------
  function renderSummary() {
    const r = state.run;
    document.title = `Keel — ${r.agent} ${Keel.shortId(r.id)}`;
    document.getElementById("crumb").textContent = Keel.shortId(r.id);
    document.getElementById("status").replaceChildren(Keel.status(r.status));
    document.getElementById("title").textContent = r.title || "(no input)";
    const active = r.status === "running" || r.status === "suspended";
    document.getElementById("cancel").hidden = !active;
    const facts = [
      ["run", el("code", { text: r.id })],
      ["agent", r.agent], ["model", r.model || "—"], ["turns", String(r.turns)],
      ["tokens", `${Keel.tokens(r.input_tokens)} in / ${Keel.tokens(r.output_tokens)} out`],
      ["cost", Keel.cost(r.cost_usd)],
      ["started", Keel.time(r.created_at)],
      [active ? "running for" : "took", Keel.duration(r.updated_at - r.created_at)],
      ["events", String(r.events)],
    ];
    document.getElementById("facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)]));
    const links = [];
    if (r.parent) links.push(el("span", {}, "forked from ", el("a", { href: "/runs/" + r.parent.run, text: Keel.shortId(r.parent.run) }), ` at event ${r.parent.at}`));
    if (state.children.length) {
      links.push(el("span", {}, "forks: ", ...state.children.flatMap((c, i) => [i ? ", " : "", el("a", { href: "/runs/" + c.run, text: Keel.shortId(c.run) }), ` (at ${c.at})`])));
    }
    document.getElementById("links").replaceChildren(...links);
  }

  // ---- approval panel ----------------------------------------------------------
  function renderApproval() {
    const box = document.getElementById("steps");
    document.getElementById("approval").hidden = state.waiting.length === 0;
    box.replaceChildren(...state.waiting.map((w) => {
      const form = w.form;
      const note = el("textarea", { name: "note", rows: 2, placeholder: "A note for the model (sent with a denial or an approval)" });
      const always = el("input", { type: "checkbox", name: "always" });
      const buttons = el("div", { class: "actions" });
      const send = async (decision) => {
        for (const b of buttons.querySelectorAll("button")) b.disabled = true;
        try {
          await api(`/api/runs/${id}/decisions`, { body: { step: w.step, decision, note: note.value || null, always: always.checked, digest: form.digest } });
          Keel.notice(`${decision === "approve" ? "Approved" : "Denied"} step ${w.step}.`, "info");
          state.waiting = state.waiting.filter((x) => x.step !== w.step);
          renderApproval();
        } catch (e) {
          report(e);
          for (const b of buttons.querySelectorAll("button")) b.disabled = false;
          refreshWaiting();
        }
      };
      buttons.append(
        el("button", { type: "button", class: "approve", "data-action": "approve", text: "Approve", onclick: () => send("approve") }),
        el("button", { type: "button", class: "deny", "data-action": "deny", text: "Deny", onclick: () => send("deny") }),
        el("label", { class: "check" }, always, " always (for the rest of this run: the rule is recorded in the log)"));
      return el("div", { class: "step", "data-step": w.step },
        el("h3", {}, el("span", { text: form.title }), el("span", { class: "muted", text: ` · ${form.tool} · call ${w.call} · step ${w.step}` })),
        KeelTrace.formContext(form),
        form.fields && form.fields.length ? el("p", { class: "muted", text: "This step is a question; answer it with `keel approve --answer`." }) : null,
        note, buttons,
        el("div", { class: "muted digest", text: "form digest " + form.digest.slice(0, 16) + "…" }));
    }));
    if (location.hash === "#approve" && state.waiting.length) document.getElementById("approval").scrollIntoView();
  }

  async function refreshWaiting() {
    try {
      const view = await api(`/api/runs/${id}?limit=1`);
      state.run = view.run;
      state.waiting = view.waiting;
      state.children = view.children;
      renderSummary();
      renderApproval();
    } catch (e) { report(e); }
  }

  // ---- tabs --------------------------------------------------------------------
  let scheduled = false;
  function schedule() {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => { scheduled = false; renderTab(); });
  }

  function show(target) {
    if (state.tab !== "trace") selectTab("trace");
    const node = document.getElementById(target) || document.getElementById(target.replace("call-", "call-"));
    if (!node) return;
    for (let p = node; p; p = p.parentElement) if (p.tagName === "DETAILS") p.open = true;
    node.scrollIntoView({ block: "center" });
    node.classList.add("flash");
    setTimeout(() => node.classList.remove("flash"), 1200);
  }

  function renderTab() {
    const m = KeelTrace.model(state.entries);
    const earlier = document.getElementById("earlier");
    earlier.hidden = state.from === 0;
    document.getElementById("earlier-text").textContent = `Showing events ${state.from}–${Math.max(state.to - 1, state.from)} of ${state.to}; ${state.from} earlier events not loaded.`;
    const container = document.getElementById("tab-" + state.tab);
    if (state.tab === "trace") KeelTrace.render(container, m, state.lives);
    else if (state.tab === "timeline") KeelViews.timeline(container, m, show);
    else if (state.tab === "graph") KeelViews.graph(container, m, state.run, state.children, show);
    else renderEvents();
  }

  function selectTab(tab) {
    state.tab = tab;
    history.replaceState(null, "", "#" + tab);
    for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === tab);
    for (const t of document.querySelectorAll(".tab")) t.hidden = t.id !== "tab-" + tab;
    renderTab();
  }

  // ---- raw events ----------------------------------------------------------------
  const KINDS = ["run_started", "llm_requested", "llm_responded", "approval_requested", "approval_resolved", "tool_started", "tool_finished", "run_completed", "run_failed", "run_cancelled"];

  function isError(e) {
    const [, b] = variant(e.event);
    return e.kind === "run_failed" || (e.kind === "tool_finished" && b && b.is_error) || (e.kind === "approval_resolved" && b && !b.resolution.approved);
  }

  function summaryOf(e) {
    const [, b] = variant(e.event);
    if (!b) return "";
    switch (e.kind) {
      case "run_started": return `${b.agent.id}: ${b.input}`;
      case "llm_requested": return `turn ${b.turn}`;
      case "llm_responded": return `turn ${b.turn} · ${b.response.usage.output_tokens} tokens out · ${b.latency_ms} ms`;
      case "approval_requested": return `${Keel.callId(b.call)} · step ${b.step} · ${b.form.title}`;
      case "approval_resolved": return `${Keel.callId(b.call)} · ${b.resolution.approved ? "approved" : "denied"} by ${b.resolution.by}${b.resolution.note ? " · " + b.resolution.note : ""}`;
      case "tool_started": return `${Keel.callId(b.call)} · attempt ${b.attempt}`;
      case "tool_finished": return `${Keel.callId(b.call)} · ${b.kind}${b.is_error ? " · error" : ""} · ${b.duration_ms} ms`;
      case "run_completed": return b.output;
      case "run_failed": return (b.code ? b.code + " " : "") + b.error;
      case "run_cancelled": return b.reason;
      default: return "";
    }
  }

  function renderEvents() {
    const form = document.getElementById("event-filters");
    const kind = form.elements.kind.value;
    const errors = form.elements.errors.checked;
    const text = form.elements.text.value.trim().toLowerCase();
    const tbody = document.querySelector("#events tbody");
    const rows = [];
    for (let i = state.entries.length - 1; i >= 0; i--) {
      const e = state.entries[i];
      if (kind && e.kind !== kind) continue;
      if (errors && !isError(e)) continue;
      const summary = summaryOf(e);
      if (text && !summary.toLowerCase().includes(text) && !JSON.stringify(e.event).toLowerCase().includes(text)) continue;
      const raw = el("details", {}, el("summary", { text: summary.length > 160 ? summary.slice(0, 160) + "…" : summary }));
      raw.addEventListener("toggle", () => {
        if (raw.open && raw.children.length === 1) raw.append(el("pre", { class: "json", text: JSON.stringify(e.event, null, 2) }));
      }, { once: false });
      rows.push(el("tr", { class: isError(e) ? "error" : "", "data-seq": e.seq },
        el("td", { class: "num", text: e.seq }), el("td", { class: "muted", text: Keel.clock(e.at) }),
        el("td", {}, el("code", { text: e.kind })), el("td", {}, raw)));
    }
    tbody.replaceChildren(...rows);
  }

  // ---- loading and live updates --------------------------------------------------
  function addEntries(entries) {
    for (const e of entries) {
      if (e.seq !== state.to) continue; // already loaded (or a gap, which the stream never makes)
      state.entries.push(e);
      state.to = e.seq + 1;
      if (e.kind === "llm_responded") state.lives.delete(variant(e.event)[1].turn);
    }
  }

  async function loadEarlier() {
    if (state.from === 0) return;
    const button = document.getElementById("load-earlier");
    button.disabled = true;
    try {
      const view = await api(`/api/runs/${id}?before=${state.from}&limit=${PAGE}`);
      state.entries = view.events.concat(state.entries);
      state.from = view.from;
      schedule();
    } catch (e) { report(e); } finally { button.disabled = false; }
  }

  function live() {
    const badge = document.getElementById("live");
    // EventSource sends Last-Event-ID (the last seq received) when it reconnects,
    // and the server resumes right after it.
    const source = new EventSource(`/api/runs/${id}/events?from=${state.to}`);
    source.addEventListener("open", () => { badge.textContent = "live"; badge.className = "live on"; });
    source.addEventListener("error", () => {
      if (state.ended) return;
      badge.textContent = "reconnecting…"; badge.className = "live off";
    });
    source.addEventListener("entry", (e) => {
      const entry = JSON.parse(e.data);
      addEntries([entry]);
      if (entry.kind === "approval_requested" || entry.kind === "approval_resolved") refreshWaiting();
      schedule();
    });
    source.addEventListener("delta", (e) => {
      const d = JSON.parse(e.data);
      if (state.entries.some((x) => x.kind === "llm_responded" && variant(x.event)[1].turn === d.turn)) return;
      const live = state.lives.get(d.turn) || { text: "", thinking: "", retry: null };
      if (d.kind === "text") live.text += d.text;
      else if (d.kind === "thinking") live.thinking += d.text;
      else if (d.kind === "retry") { live.text = ""; live.thinking = ""; live.retry = d.text; }
      state.lives.set(d.turn, live);
      const node = document.querySelector(`#turn-${d.turn} pre.assistant.live`);
      if (node && d.kind === "text") node.textContent = live.text; else if (state.tab === "trace") schedule();
    });
    source.addEventListener("run", (e) => {
      const run = JSON.parse(e.data);
      const changed = !state.run || state.run.status !== run.status;
      state.run = Object.assign({}, state.run, run);
      renderSummary();
      if (changed && run.status !== "suspended") { state.waiting = []; renderApproval(); }
    });
    source.addEventListener("end", () => {
      state.ended = true;
      source.close();
      badge.textContent = "ended"; badge.className = "live done";
      refreshWaiting();
    });
  }

  async function init() {
    const kinds = document.getElementById("event-filters").elements.kind;
    for (const k of KINDS) kinds.append(el("option", { value: k, text: k }));
    document.getElementById("event-filters").addEventListener("input", () => renderEvents());
    document.getElementById("event-filters").addEventListener("submit", (e) => e.preventDefault());
    for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => selectTab(b.dataset.tab));
    document.getElementById("load-earlier").addEventListener("click", loadEarlier);
    document.getElementById("cancel").addEventListener("click", async () => {
      if (!confirm("Cancel this run? It stops at once and cannot be continued.")) return;
      try { await api(`/api/runs/${id}/cancel`, { body: {} }); } catch (e) { report(e); }
    });
    const view = await api(`/api/runs/${id}?limit=${PAGE}`);
    state.run = view.run;
    state.waiting = view.waiting;
    state.children = view.children;
    state.entries = view.events;
    state.from = view.from;
    state.to = view.to;
    renderSummary();
    renderApproval();
    selectTab(state.tab === "approve" ? "trace" : state.tab);
    live();
  }

  init().catch(report);
})();
