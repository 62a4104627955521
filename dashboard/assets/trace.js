// The trace: the run's events folded into run → turns (LLM request and response,
// usage, latency, thinking, text) → tool calls (arguments, approvals, result,
// duration, blobs on demand) → the end.
"use strict";

const KeelTrace = (() => {
  const { el, variant, duration, tokens } = Keel;

  // Folds entries (in seq order) into turns and calls.
  function model(entries) {
    const m = { started: null, end: null, turns: new Map(), calls: new Map(), first: entries.length ? entries[0].seq : 0 };
    const turn = (n) => {
      if (!m.turns.has(n)) m.turns.set(n, { n, calls: [], requested: null, responded: null });
      return m.turns.get(n);
    };
    const call = (c) => {
      const id = Keel.callId(c);
      if (!m.calls.has(id)) {
        const entry = { id, turn: c.turn, index: c.index, name: null, input: null, approvals: [], starts: [], finished: null };
        m.calls.set(id, entry);
        turn(c.turn).calls.push(entry);
      }
      return m.calls.get(id);
    };
    for (const e of entries) {
      const [, b] = variant(e.event);
      if (!b && e.kind !== "run_started") continue;
      switch (e.kind) {
        case "run_started": m.started = { entry: e, body: b }; break;
        case "llm_requested": turn(b.turn).requested = e; break;
        case "llm_responded": {
          const t = turn(b.turn);
          t.responded = e;
          t.response = b.response;
          t.latency = b.latency_ms;
          let index = 0;
          for (const block of (b.response && b.response.content) || []) {
            const [kind, body] = variant(block);
            if (kind === "ToolUse") {
              const c = call({ turn: b.turn, index: index++ });
              c.name = body.name;
              c.input = body.input;
            }
          }
          break;
        }
        case "approval_requested": call(b.call).approvals.push({ step: b.step, form: b.form, requested: e, resolved: null }); break;
        case "approval_resolved": {
          const c = call(b.call);
          const a = c.approvals.find((x) => x.step === b.step);
          if (a) a.resolved = { entry: e, resolution: b.resolution };
          else c.approvals.push({ step: b.step, form: null, requested: null, resolved: { entry: e, resolution: b.resolution } });
          break;
        }
        case "tool_started": call(b.call).starts.push({ entry: e, attempt: b.attempt }); break;
        case "tool_finished": call(b.call).finished = { entry: e, body: b }; break;
        case "run_completed": case "run_failed": case "run_cancelled": m.end = { entry: e, kind: e.kind, body: b }; break;
        default: break;
      }
    }
    m.ordered = [...m.turns.values()].sort((a, b) => a.n - b.n);
    return m;
  }

  // How a call stands: waiting, running, ok, error, denied, …
  function callState(c) {
    if (c.finished) {
      const kind = c.finished.body.kind;
      if (kind === "Denied") return "denied";
      if (kind === "Refused") return "refused";
      if (kind === "Interrupted") return "interrupted";
      if (kind === "Cancelled") return "cancelled";
      return c.finished.body.is_error ? "error" : "ok";
    }
    if (c.approvals.some((a) => a.requested && !a.resolved)) return "waiting";
    if (c.starts.length) return "running";
    return "pending";
  }

  function pre(text, cls) {
    return el("pre", { class: cls || "text", text: text === undefined || text === null ? "" : String(text) });
  }

  function json(value) {
    return pre(JSON.stringify(value, null, 2), "json");
  }

  // A recorded output: inline text, or a blob loaded when asked for.
  function output(text) {
    const [kind, body] = variant(text);
    if (kind === "Inline") return pre(body, "text output");
    if (kind === "Blob") {
      const holder = el("div", { class: "blob" });
      const button = el("button", {
        type: "button",
        text: `Load output (${tokens(body.len)} bytes, stored as a blob)`,
        onclick: async () => {
          button.disabled = true;
          try {
            const r = await fetch("/api/blobs/" + body.hash, { credentials: "same-origin" });
            const t = await r.text();
            holder.replaceChildren(pre(r.ok ? t : "could not load the blob: " + t, "text output"));
          } catch (e) {
            button.disabled = false;
            Keel.notice(String(e));
          }
        },
      });
      holder.append(button);
      return holder;
    }
    return json(text);
  }

  function formContext(form) {
    if (!form) return null;
    const [kind, c] = variant(form.context);
    switch (kind) {
      case "Command": return el("div", { class: "form" },
        el("div", {}, el("span", { class: "label", text: "command" }), pre(c.command, "command")),
        el("div", {}, el("span", { class: "label", text: "in" }), el("code", { class: "cwd", text: c.cwd })),
        el("div", { class: "reason" }, el("span", { class: "label", text: "why approval" }), el("span", { text: c.reason })),
        c.matched_rule ? el("div", { class: "muted", text: "matched rule: " + c.matched_rule }) : null);
      case "Write": return el("div", { class: "form" },
        el("div", {}, el("span", { class: "label", text: c.overwrites ? "overwrite" : "create" }), el("code", { text: c.path })),
        pre(c.content, "diff add"));
      case "Edit": return el("div", { class: "form" },
        el("div", {}, el("span", { class: "label", text: "edit" }), el("code", { text: c.path })),
        diff(c.diff));
      case "Question": return el("div", { class: "form" }, pre(c.question, "text"));
      case "Call": return el("div", { class: "form" }, pre(c.args, "json"));
      default: return json(form.context);
    }
  }

  // A unified diff, each line coloured by its sign.
  function diff(text) {
    const box = el("pre", { class: "diff" });
    for (const line of String(text || "").split("\n")) {
      const cls = line.startsWith("+") && !line.startsWith("+++") ? "add"
        : line.startsWith("-") && !line.startsWith("---") ? "del"
        : line.startsWith("@@") ? "hunk" : "ctx";
      box.append(el("span", { class: cls, text: line + "\n" }));
    }
    return box;
  }

  function resolution(r) {
    const res = r.resolution;
    const verdict = res.answer ? "answered" : res.approved ? "approved" : "denied";
    return el("div", { class: "resolution " + verdict },
      el("strong", { text: verdict }), ` by ${res.by} at ${Keel.clock(r.entry.at)}`,
      res.remember ? el("span", { class: "muted", text: " · always: " + JSON.stringify(res.remember) }) : null,
      res.note ? el("div", {}, el("span", { class: "label", text: "note" }), el("span", { class: "note", text: res.note })) : null,
      res.answer ? pre(res.answer, "json") : null);
  }

  // Remembers which nodes a person opened or closed across re-renders.
  const opened = new Map();
  function details(id, openByDefault, summary, ...body) {
    const open = opened.has(id) ? opened.get(id) : openByDefault;
    const d = el("details", { id, open }, el("summary", {}, summary), ...body);
    d.addEventListener("toggle", () => opened.set(id, d.open));
    return d;
  }

  function renderCall(c) {
    const state = callState(c);
    const finished = c.finished && c.finished.body;
    const summary = [
      el("span", { class: "dot " + state }),
      el("strong", { text: c.name || "call" }), " ",
      el("code", { class: "muted", text: c.id }), " ",
      el("span", { class: "tag " + state, text: state }),
      finished ? el("span", { class: "muted", text: " · " + duration(finished.duration_ms) }) : null,
      c.starts.length > 1 ? el("span", { class: "muted", text: ` · ${c.starts.length} attempts` }) : null,
    ];
    const body = [];
    if (c.input !== null) body.push(el("div", { class: "label", text: "arguments" }), json(c.input));
    for (const a of c.approvals) {
      body.push(el("div", { class: "approval-record" },
        el("div", { class: "label", text: `approval · step ${a.step}` + (a.requested ? " · asked " + Keel.clock(a.requested.at) : "") }),
        a.form ? formContext(a.form) : null,
        a.resolved ? resolution(a.resolved) : el("div", { class: "resolution waiting", text: "waiting for a person" })));
    }
    if (finished) {
      body.push(el("div", { class: "label", text: `result · ${finished.kind}` + (finished.is_error ? " · error" : "") }), output(finished.output));
    }
    return el("li", { class: "node call " + state }, details("call-" + c.id, state === "waiting" || state === "error", summary, ...body));
  }

  function renderTurn(t, live, isLast) {
    const r = t.response;
    const u = r && r.usage;
    const summary = [
      el("span", { class: "dot " + (r ? "ok" : "running") }),
      el("strong", { text: "Turn " + t.n }),
      r ? el("span", { class: "muted", text: ` · ${r.model} · ${tokens(u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens)} in / ${tokens(u.output_tokens)} out · ${duration(t.latency)} · ${variant(r.stop_reason)[0]}` })
        : el("span", { class: "muted", text: " · waiting for the model…" }),
    ];
    const body = [];
    if (r) {
      if (u.cache_read_input_tokens || u.cache_creation_input_tokens) {
        body.push(el("div", { class: "muted", text: `cache: ${u.cache_read_input_tokens} read, ${u.cache_creation_input_tokens} written` }));
      }
      for (const block of r.content || []) {
        const [kind, b] = variant(block);
        if (kind === "Text") body.push(pre(b.text, "text assistant"));
        else if (kind === "Thinking") body.push(details(`think-${t.n}-${body.length}`, false, el("span", { class: "muted", text: "thinking" }), pre(b.thinking, "text thinking")));
        else if (kind !== "ToolUse") body.push(el("div", { class: "muted", text: kind || "block" }), json(b));
      }
    } else if (live) {
      if (live.retry) body.push(el("div", { class: "notice warn", text: "the provider is retrying: " + live.retry }));
      if (live.thinking) body.push(pre(live.thinking, "text thinking live"));
      body.push(pre(live.text || "", "text assistant live"));
    }
    if (t.calls.length) body.push(el("ul", { class: "tree" }, t.calls.map(renderCall)));
    return el("li", { class: "node turn", id: "turn-" + t.n }, details("turn-d-" + t.n, isLast || t.calls.some((c) => callState(c) === "waiting"), summary, ...body));
  }

  function render(container, m, lives) {
    const items = [];
    if (m.started) {
      const s = m.started.body;
      items.push(el("li", { class: "node run" }, details("run-start", m.turns.size < 2, [
        el("span", { class: "dot ok" }), el("strong", { text: "Run started" }),
        el("span", { class: "muted", text: ` · ${s.agent.id} · ${s.agent.model} · ${Keel.time(m.started.entry.at)}` }),
      ], el("div", { class: "label", text: "input" }), pre(s.input, "text"),
        s.agent.system_prompt ? details("run-system", false, el("span", { class: "muted", text: "system prompt" }), pre(s.agent.system_prompt, "text")) : null)));
    }
    const turns = m.ordered;
    turns.forEach((t, i) => items.push(renderTurn(t, lives.get(t.n), i === turns.length - 1)));
    if (m.end) {
      const b = m.end.body;
      const text = m.end.kind === "run_completed" ? b.output : m.end.kind === "run_failed" ? (b.code ? b.code + ": " : "") + b.error : b.reason;
      const cls = m.end.kind === "run_completed" ? "ok" : m.end.kind === "run_failed" ? "error" : "cancelled";
      items.push(el("li", { class: "node end " + cls }, el("div", { class: "end-head" },
        el("span", { class: "dot " + cls }), el("strong", { text: m.end.kind.replace("run_", "Run ") }),
        el("span", { class: "muted", text: " · " + Keel.time(m.end.entry.at) + (b.stopped_by ? " · stopped by " + b.stopped_by : "") })),
      pre(text, "text")));
    }
    container.replaceChildren(el("ul", { class: "tree root" }, items));
  }

  return { model, render, callState, formContext, diff, output };
})();
