// The timeline (a waterfall of LLM calls, tool calls and waits from the recorded
// times) and the graph (turns and their tool calls, forks and child runs as edges,
// drawn as SVG).
"use strict";

const KeelViews = (() => {
  const { el, svg, duration } = Keel;

  // Spans [start, end] of every turn, call and wait of the loaded events.
  function spans(m, now) {
    const out = [];
    for (const t of m.ordered) {
      if (t.requested) {
        out.push({ kind: "llm", label: "Turn " + t.n + (t.response ? " · " + t.response.model : ""), start: t.requested.at, end: t.responded ? t.responded.at : now, open: !t.responded, target: "turn-" + t.n });
      }
      for (const c of t.calls) {
        for (const a of c.approvals) {
          if (a.requested) out.push({ kind: "wait", label: `wait ${a.step}` + (a.resolved ? " · " + a.resolved.resolution.by : ""), start: a.requested.at, end: a.resolved ? a.resolved.entry.at : now, open: !a.resolved, target: "call-" + c.id });
        }
        const start = c.starts.length ? c.starts[c.starts.length - 1].entry.at : null;
        if (start !== null || c.finished) {
          const end = c.finished ? c.finished.entry.at : now;
          out.push({ kind: "tool " + KeelTrace.callState(c), label: `${c.name || "call"} ${c.id}`, start: start !== null ? start : end - (c.finished.body.duration_ms || 0), end, open: !c.finished, target: "call-" + c.id });
        }
      }
    }
    return out;
  }

  function timeline(container, m, show) {
    const now = Date.now();
    const rows = spans(m, m.end ? m.end.entry.at : now);
    if (!rows.length) {
      container.replaceChildren(el("p", { class: "empty", text: "Nothing timed yet." }));
      return;
    }
    const t0 = Math.min(...rows.map((r) => r.start));
    const t1 = Math.max(...rows.map((r) => r.end), t0 + 1);
    const scale = 100 / (t1 - t0);
    const axis = el("div", { class: "wf-axis" },
      el("span", { text: Keel.clock(t0) }), el("span", { text: "total " + duration(t1 - t0) }), el("span", { text: Keel.clock(t1) }));
    const list = el("div", { class: "waterfall" });
    for (const r of rows) {
      const bar = el("div", { class: "wf-bar " + r.kind + (r.open ? " open" : ""), title: `${r.label}: ${duration(r.end - r.start)}` });
      // CSSOM styles are allowed under the page's CSP (no inline style attributes).
      bar.style.left = ((r.start - t0) * scale).toFixed(3) + "%";
      bar.style.width = Math.max((r.end - r.start) * scale, 0.3).toFixed(3) + "%";
      list.append(el("div", { class: "wf-row", onclick: () => show(r.target) },
        el("div", { class: "wf-label", text: r.label }),
        el("div", { class: "wf-track" }, bar),
        el("div", { class: "wf-dur", text: duration(r.end - r.start) + (r.open ? "…" : "") })));
    }
    container.replaceChildren(el("div", { class: "legend" },
      el("span", { class: "key llm", text: "LLM call" }), el("span", { class: "key tool ok", text: "tool" }),
      el("span", { class: "key tool error", text: "tool error" }), el("span", { class: "key wait", text: "waiting for a person" })), axis, list);
  }

  const COLORS = { ok: "#2e7d32", error: "#c62828", denied: "#ef6c00", refused: "#ef6c00", waiting: "#f9a825", running: "#1565c0", pending: "#78909c", interrupted: "#6d4c41", cancelled: "#616161" };

  function node(x, y, w, label, sub, color, onclick, id) {
    return svg("g", { class: "gnode", transform: `translate(${x},${y})`, onclick, "data-node": id },
      svg("rect", { width: w, height: 40, rx: 6, fill: "#fff", stroke: color, "stroke-width": 2 }),
      svg("text", { x: 10, y: 17, class: "gl", text: label.length > 32 ? label.slice(0, 31) + "…" : label }),
      svg("text", { x: 10, y: 32, class: "gs", text: sub }));
  }

  function edge(x1, y1, x2, y2, dashed) {
    const my = (y1 + y2) / 2;
    return svg("path", { d: `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2}`, class: "gedge" + (dashed ? " dashed" : ""), fill: "none" });
  }

  // Draws the run's flow top to bottom: start → turn → its calls → next turn → end;
  // the parent run (for a fork) above, runs forked from this one beside the turn
  // where they left it.
  function graph(container, m, run, children, show) {
    const W = 230, GAP = 24, ROW = 80, X0 = 20;
    const parts = [];
    let y = 10;
    let prev = null; // [x, y] of the bottom of the previous node
    const link = (x, top) => { if (prev) parts.push(edge(prev[0], prev[1], x, top)); };
    if (run.parent) {
      parts.push(node(X0, y, W, "parent " + Keel.shortId(run.parent.run), "forked at event " + run.parent.at, "#6a1b9a", () => { location.href = "/runs/" + run.parent.run; }, "parent"));
      prev = [X0 + W / 2, y + 40];
      y += ROW;
    }
    if (m.started) {
      link(X0 + W / 2, y);
      parts.push(node(X0, y, W, "start · " + m.started.body.agent.id, Keel.clock(m.started.entry.at), "#37474f", () => show("run-start"), "start"));
      prev = [X0 + W / 2, y + 40];
      y += ROW;
    } else if (m.first > 0) {
      parts.push(svg("text", { x: X0, y: y + 20, class: "gs", text: `… ${m.first} earlier events not loaded` }));
      y += 40;
    }
    const forkAt = (seq) => children.filter((c) => c.at === seq);
    let maxX = X0 + W;
    const sideForks = [];
    for (const t of m.ordered) {
      link(X0 + W / 2, y);
      const r = t.response;
      const sub = r ? `${Keel.tokens(r.usage.input_tokens + r.usage.output_tokens)} tok · ${duration(t.latency)}` : "waiting for the model";
      parts.push(node(X0, y, W, "turn " + t.n + (r ? " · " + r.model : ""), sub, r ? "#1565c0" : COLORS.running, () => show("turn-" + t.n), "turn-" + t.n));
      const turnBottom = [X0 + W / 2, y + 40];
      let end = t.responded ? t.responded.seq + 1 : null;
      if (t.calls.length) {
        const cy = y + ROW;
        const bottoms = [];
        t.calls.forEach((c, i) => {
          const x = X0 + i * (W + GAP);
          const state = KeelTrace.callState(c);
          parts.push(edge(turnBottom[0], turnBottom[1], x + W / 2, cy));
          parts.push(node(x, cy, W, (c.name || "call") + " " + c.id, state + (c.finished ? " · " + duration(c.finished.body.duration_ms) : ""), COLORS[state] || "#78909c", () => show("call-" + c.id), "call-" + c.id));
          bottoms.push([x + W / 2, cy + 40]);
          maxX = Math.max(maxX, x + W);
          if (c.finished) end = Math.max(end || 0, c.finished.entry.seq + 1);
        });
        y = cy + ROW;
        // The next node joins every call of this turn.
        prev = null;
        const joins = bottoms;
        parts.push({ joins });
      } else {
        prev = turnBottom;
        y += ROW;
      }
      for (const child of children.filter((c) => !sideForks.some((s) => s.child === c) && end !== null && c.at <= end && c.at > (t.requested ? t.requested.seq : 0))) {
        sideForks.push({ child, y: y - ROW });
      }
    }
    if (m.end) {
      const cls = m.end.kind === "run_completed" ? "ok" : m.end.kind === "run_failed" ? "error" : "cancelled";
      link(X0 + W / 2, y);
      parts.push(node(X0, y, W, m.end.kind.replace("run_", ""), Keel.clock(m.end.entry.at), COLORS[cls], () => show("end"), "end"));
      y += ROW;
    }
    // Resolve the joins: edges from each call of a turn to the node after it.
    const resolved = [];
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      if (!p.joins) { resolved.push(p); continue; }
      const next = parts.slice(i + 1).find((q) => q instanceof SVGElement && q.tagName === "g");
      if (next) {
        const [, ny] = /translate\(([-\d.]+),([-\d.]+)\)/.exec(next.getAttribute("transform")).slice(1).map(Number);
        for (const [bx, by] of p.joins) resolved.push(edge(bx, by, X0 + W / 2, ny));
      }
    }
    const forkX = maxX + 60;
    for (const { child, y: fy } of sideForks) {
      resolved.push(edge(X0 + W, fy + 20, forkX, fy + 20, true));
      resolved.push(node(forkX, fy, W, "fork " + Keel.shortId(child.run), "from event " + child.at, "#6a1b9a", () => { location.href = "/runs/" + child.run; }, "fork-" + child.run));
    }
    const others = children.filter((c) => !sideForks.some((s) => s.child === c));
    others.forEach((c, i) => resolved.push(node(forkX, 10 + i * 50, W, "fork " + Keel.shortId(c.run), "from event " + c.at, "#6a1b9a", () => { location.href = "/runs/" + c.run; }, "fork-" + c.run)));
    const width = (children.length ? forkX + W : maxX) + 20;
    container.replaceChildren(svg("svg", { class: "graph", width, height: y + 10, viewBox: `0 0 ${width} ${y + 10}`, role: "img", "aria-label": "the run's flow" }, resolved));
  }

  return { timeline, graph };
})();
