// wsctl local: the live page. One WebSocket (/live) brings what changed every half second;
// actions are POSTs to /api/ACTION carrying the page's secret (from this page's own URL).
"use strict";
(() => {
  const token = new URLSearchParams(location.search).get("token") || "";
  const $ = (id) => document.getElementById(id);
  const MAX_ITEMS = 400; // conversation items kept on the page
  const MAX_LINES = 500; // log stream lines kept on the page

  // -- small helpers ------------------------------------------------------------------------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }
  function setText(el, text) {
    if (el.textContent !== text) el.textContent = text;
  }
  const pad = (n, width = 2) => String(n).padStart(width, "0");
  function clock(ms, withMs) {
    if (!ms) return "–";
    const d = new Date(ms);
    const text = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    return withMs ? `${text}.${pad(d.getMilliseconds(), 3)}` : text;
  }
  function when(value) { // a registry time: epoch seconds or ms, or text
    if (typeof value === "number") return clock(value > 1e12 ? value : value * 1000);
    return value || "–";
  }

  // JSON, folded: the compact form on one line, indented when opened.
  function foldable(text, binary) {
    if (binary) return h("div", { class: "body" }, h("code", {}, `binary frame, ${atob(text).length} bytes`));
    let parsed;
    try { parsed = JSON.parse(text); } catch (e) { parsed = undefined; }
    if (parsed !== null && typeof parsed === "object") {
      const compact = JSON.stringify(parsed);
      return h("details", { class: "body" },
        h("summary", { class: "mono" }, compact.length > 160 ? compact.slice(0, 160) + "…" : compact),
        h("pre", {}, JSON.stringify(parsed, null, 2)));
    }
    return h("div", { class: "body" }, h("code", {}, text));
  }
  // A log line whose message is JSON (wsctl's handler, structured loggers): the JSON folded.
  function logLine(text) {
    const start = text.indexOf("{");
    if (start >= 0 && text.trimEnd().endsWith("}")) {
      try {
        const parsed = JSON.parse(text.slice(start));
        if (parsed && typeof parsed === "object") return [text.slice(0, start), foldable(text.slice(start))];
      } catch (e) { /* not JSON: shown as it is */ }
    }
    return [text];
  }
  const isReport = (line) => /^(START|END|REPORT) RequestId:/.test(line);

  // -- state ---------------------------------------------------------------------------------
  const page = {
    about: null, since: null, socket: null, retry: 500,
    connections: new Map(), rows: new Map(), selected: null, closed: false,
    functions: new Map(), fnRows: new Map(), fn: null, eventShown: null,
    registry: null,
  };

  // -- connections ------------------------------------------------------------------------------
  const tbody = $("connection-table").tBodies[0];
  function connectionRow(id) {
    const button = h("button", { class: "link", type: "button", "aria-pressed": "false",
      onclick: () => selectConnection(id) }, id);
    return h("tr", { "data-id": id }, h("td", {}, button), h("td"), h("td"), h("td"), h("td"), h("td"), h("td"));
  }
  // Rows out of the list's view are filled when they scroll into it: with a thousand busy connections,
  // the page writes only the rows a person can see.
  const inView = new Set();
  const stale = new Set();
  const rowObserver = new IntersectionObserver((seen) => {
    for (const sight of seen) {
      const id = sight.target.dataset.id;
      if (!sight.isIntersecting) { inView.delete(id); continue; }
      inView.add(id);
      if (stale.delete(id) && page.connections.has(id)) fillRow(sight.target, page.connections.get(id));
    }
  }, { root: $("connection-table").closest(".scroll") });
  function upsertConnection(update) { // a new row in full, or what changed of a known one
    const row = Object.assign(page.connections.get(update.id) || {}, update);
    page.connections.set(row.id, row);
    let tr = page.rows.get(row.id);
    if (!tr) {
      tr = connectionRow(row.id);
      page.rows.set(row.id, tr);
      tbody.append(tr);
      filterRow(tr, row);
      rowObserver.observe(tr);
      fillRow(tr, row);
    } else if (inView.has(row.id)) {
      fillRow(tr, row);
    } else {
      stale.add(row.id);
    }
  }
  function fillRow(tr, row) {
    const cells = tr.cells;
    setText(cells[1], row.user || "–");
    const identity = Object.entries(row.identity || {}).map(([k, v]) => `${k}: ${v}`).join("\n");
    if (cells[1].title !== identity) cells[1].title = identity;
    setText(cells[2], row.sourceIp || "–");
    setText(cells[3], row.subprotocol || "–");
    setText(cells[4], clock(row.connectedAt));
    setText(cells[5], clock(row.lastActive));
    setText(cells[6], row.in === null ? "–" : `${row.in} / ${row.out}`);
  }
  function removeConnection(id) {
    const tr = page.rows.get(id);
    if (tr) { rowObserver.unobserve(tr); tr.remove(); }
    inView.delete(id);
    stale.delete(id);
    page.rows.delete(id);
    page.connections.delete(id);
    if (id === page.selected) {
      page.closed = true;
      setText($("conversation-of"), `${id} (closed)`);
    }
  }
  function countConnections() {
    const n = page.connections.size;
    setText($("connection-count"), `(${n})`);
    $("no-connections").hidden = n > 0;
  }
  function filterRow(tr, row) {
    const wanted = $("filter").value.trim().toLowerCase();
    const text = `${row.id} ${row.user || ""} ${row.sourceIp || ""}`.toLowerCase();
    tr.hidden = wanted !== "" && !text.includes(wanted);
  }
  $("filter").addEventListener("input", () => {
    for (const [id, tr] of page.rows) filterRow(tr, page.connections.get(id));
  });

  function selectConnection(id) {
    page.selected = id;
    page.closed = !page.connections.has(id);
    for (const [rowId, tr] of page.rows) {
      tr.classList.toggle("selected", rowId === id);
      tr.cells[0].firstChild.setAttribute("aria-pressed", String(rowId === id));
    }
    setText($("conversation-of"), id + (page.closed ? " (closed)" : ""));
    $("conversation-tools").hidden = false;
    $("send-result").textContent = "";
    resetConversation();
    const row = page.connections.get(id);
    if (row) showIdentity(row);
    tell();
  }
  function showIdentity(row) {
    const facts = [["user", row.user || "–"], ["source IP", row.sourceIp], ["user agent", row.userAgent || "–"],
      ["subprotocol", row.subprotocol || "–"], ["connected", clock(row.connectedAt, true)],
      ...Object.entries(row.identity || {}).map(([k, v]) => [`authorizer ${k}`, v])];
    $("identity").replaceChildren(...facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  }

  // -- one connection's conversation ------------------------------------------------------------------
  const conv = { items: [], byRid: new Map(), byReq: new Map() };
  const frames = $("frames");
  function resetConversation() {
    conv.items = [];
    conv.byRid.clear();
    conv.byReq.clear();
    frames.replaceChildren();
  }
  function addItem(li, rid) {
    frames.append(li);
    const item = { li, rid, box: null };
    conv.items.push(item);
    if (rid) conv.byRid.set(rid, item);
    while (conv.items.length > MAX_ITEMS) {
      const old = conv.items.shift();
      old.li.remove();
      if (old.rid) conv.byRid.delete(old.rid);
    }
    return item;
  }
  function head(...parts) { return h("div", { class: "head" }, ...parts); }
  function routeTag(route) { return route ? h("span", { class: "route" }, route) : h("span", { class: "route" }, "no route"); }

  function invocationFor(entry) {
    let inv = conv.byReq.get(entry.req);
    if (inv) return inv;
    let owner = conv.byRid.get(entry.rid);
    if (!owner) { // $connect, $disconnect, the authorizer: an event with no frame of its own
      owner = addItem(h("li", { class: "event" }, head(routeTag(entry.route), h("span", { class: "time" },
        clock(entry.t, true)))), entry.rid);
    }
    if (!owner.box) { owner.box = h("div"); owner.li.append(owner.box); }
    const title = h("div", { class: "head" });
    const lines = h("ol", { class: "lines" });
    const el = h("div", { class: "invocation", "data-request": entry.req }, title, lines);
    owner.box.append(el);
    inv = { fn: entry.fn, req: entry.req, title, lines, status: null, ms: null, init: null };
    conv.byReq.set(entry.req, inv);
    drawInvocation(inv);
    return inv;
  }
  function drawInvocation(inv) {
    const bad = inv.status && inv.status !== "ok";
    inv.title.replaceChildren(...[
      h("strong", {}, inv.fn), h("span", { class: "mono" }, `request ${inv.req}`),
      inv.ms !== null ? h("span", {}, `${inv.ms.toFixed(2)} ms`) : null,
      inv.init !== null ? h("span", { class: "muted" }, `Init Duration ${inv.init.toFixed(2)} ms`) : null,
      h("span", { class: `status ${bad ? "status-bad" : "status-ok"}` }, inv.status || "running…")].filter(Boolean));
  }

  const skipped = (e) => `… ${e.count} more not shown (the page shows the newest ${e.count > 1 ? "ones" : "one"} ` +
    "of each half second; the emulator's log has every line)";
  function conversationEntry(e) {
    if (e.kind === "skipped") {
      addItem(h("li", { class: "event muted" }, skipped(e)));
    } else if (e.kind === "open") {
      addItem(h("li", { class: "event" }, head(h("span", { class: "dir" }, "connected"),
        h("span", { class: "time" }, clock(e.t, true)))));
    } else if (e.kind === "close") {
      addItem(h("li", { class: "closed" }, head(h("span", { class: "dir" }, "closed"),
        h("span", {}, `${e.code}${e.reason ? " " + e.reason : ""}`), h("span", { class: "time" }, clock(e.t, true)))));
    } else if (e.kind === "in") {
      addItem(h("li", { class: "in", "data-rid": e.rid }, head(h("span", { class: "dir" }, "→ in"), routeTag(e.route),
        h("span", { class: "time" }, clock(e.t, true)), truncated(e)), foldable(e.data, e.binary)), e.rid);
    } else if (e.kind === "out") {
      const answered = e.rid && conv.byRid.get(e.rid);
      addItem(h("li", { class: "out" }, head(h("span", { class: "dir" }, "← out"),
        h("span", { class: "muted" }, answered ? "reply" : "@connections POST"),
        h("span", { class: "time" }, clock(e.t, true)), truncated(e)), foldable(e.data, e.binary)));
    } else if (e.req) { // start, log, end
      const inv = invocationFor(e);
      if (e.kind === "end") {
        Object.assign(inv, { status: e.status, ms: e.ms, init: e.init });
        drawInvocation(inv);
      } else if (!isReport(e.data)) {
        inv.lines.append(h("li", {}, ...logLine(e.data)));
      }
    }
  }
  function truncated(e) {
    return e.size > (e.data || "").length && !e.binary ? h("span", { class: "muted" }, `(first ${e.data.length} of ${e.size})`)
      : null;
  }

  // -- functions --------------------------------------------------------------------------------------
  const fnBody = $("function-table").tBodies[0];
  function upsertFunction(row) {
    page.functions.set(row.name, row);
    let tr = page.fnRows.get(row.name);
    if (!tr) {
      const button = h("button", { class: "link", type: "button", "aria-pressed": "false",
        onclick: () => selectFunction(row.name) }, row.name);
      tr = h("tr", { "data-function": row.name }, h("td", {}, button), h("td"), h("td"), h("td"), h("td"), h("td"));
      page.fnRows.set(row.name, tr);
      fnBody.append(tr);
    }
    const cells = tr.cells;
    cells[0].title = row.routes.length ? `routes: ${row.routes.join(", ")}\nhandler: ${row.handler}` : `handler: ${row.handler}`;
    setText(cells[1], row.runtime);
    cells[2].replaceChildren(...environments(row));
    setText(cells[3], String(row.invocations));
    setText(cells[4], String(row.errors));
    setText(cells[5], row.lastInit === null ? "–" : `${row.lastInit.toFixed(2)} ms`);
    if (row.name === page.fn && row.lastEvent && row.lastEvent !== page.eventShown &&
        document.activeElement !== $("invoke-event")) {
      $("invoke-event").value = page.eventShown = row.lastEvent;
    }
  }
  function environments(row) {
    const envs = row.environments;
    if (!envs.length) return [h("span", { class: "muted" }, `none (max ${row.maxEnvironments})`)];
    if (envs.length > 8) {
      const count = (state) => envs.filter((e) => e.state === state).length;
      return [`${count("busy")} busy, ${count("warm")} warm, ${count("cold")} cold`];
    }
    return envs.map((e) => h("span", { class: `env ${e.state}`, title: `environment ${e.id}: ${e.state}, ${e.invocations} invocation(s)` },
      e.state));
  }
  function selectFunction(name) {
    page.fn = name;
    for (const [fnName, tr] of page.fnRows) {
      tr.classList.toggle("selected", fnName === name);
      tr.cells[0].firstChild.setAttribute("aria-pressed", String(fnName === name));
    }
    $("function-detail").hidden = false;
    setText($("function-of"), name);
    $("function-log").replaceChildren();
    $("invoke-result").textContent = "";
    $("invoke-payload").hidden = true;
    const row = page.functions.get(name);
    $("invoke-event").value = page.eventShown = (row && row.lastEvent) || "{}";
    tell();
  }
  function logLines(list) { // the newest MAX_LINES of a batch, appended at once
    const stream = $("function-log");
    stream.append(...list.slice(-MAX_LINES).map((e) => e.kind === "skipped"
      ? h("li", { class: "report" }, h("span", { class: "time" }, clock(e.t, true)), h("span", { class: "text" }, skipped(e)))
      : h("li", { class: isReport(e.data) ? "report" : "" },
        h("span", { class: "time" }, clock(e.t, true)), h("span", { class: "text" }, ...logLine(e.data)))));
    while (stream.childElementCount > MAX_LINES) stream.firstElementChild.remove();
  }

  // -- the registry ----------------------------------------------------------------------------------
  const registryDetails = $("registry-details");
  function drawRegistry(answer) {
    page.registry = answer;
    setText($("registry-note"), answer.message || "");
    const body = $("registry-table").tBodies[0];
    if (!answer.rows) { body.replaceChildren(); return; }
    const rows = answer.rows.map((r) => h("tr", { class: r.live ? "" : "stale", "data-id": r.connectionId },
      h("td", { class: "mono" }, r.connectionId), h("td", {}, r.userId || "–"), h("td", {}, (r.rooms || []).join(", ") || "–"),
      h("td", {}, when(r.connectedAt)),
      h("td", {}, r.live ? h("span", { class: "tag live" }, "live") :
        h("span", { class: "tag stale", title: "the registry holds it, the gateway does not: prune removes it" }, "stale"))));
    const listed = new Set(answer.rows.map((r) => r.connectionId));
    for (const [id, row] of page.connections) {
      if (!listed.has(id)) {
        rows.push(h("tr", { "data-id": id }, h("td", { class: "mono" }, id), h("td", {}, row.user || "–"), h("td", {}, "–"),
          h("td", {}, clock(row.connectedAt)), h("td", {}, h("span", { class: "tag" }, "live, not in the registry"))));
      }
    }
    body.replaceChildren(...rows);
  }
  registryDetails.addEventListener("toggle", () => send({ registry: registryDetails.open ? "open" : "closed" }));
  $("registry-refresh").addEventListener("click", () => send({ registry: "refresh" }));

  // -- actions ------------------------------------------------------------------------------------------
  async function act(name, body, out) {
    out.className = "result";
    out.textContent = "…";
    try {
      const response = await fetch(`/api/${name}`, { method: "POST", body: JSON.stringify(body),
        headers: { "Content-Type": "application/json", "X-Wsctl-Token": token } });
      const answer = await response.json();
      out.textContent = answer.message;
      out.className = `result ${answer.ok ? "ok" : "bad"}`;
      return answer;
    } catch (error) {
      out.textContent = `the emulator did not answer (${error.message})`;
      out.className = "result bad";
      return null;
    }
  }
  $("send").addEventListener("submit", (event) => {
    event.preventDefault();
    act("send", { connectionId: page.selected, message: $("send-message").value }, $("send-result"));
  });
  $("disconnect").addEventListener("click", () => act("disconnect", { connectionId: page.selected }, $("send-result")));
  $("broadcast").addEventListener("submit", (event) => {
    event.preventDefault();
    act("broadcast", { message: $("broadcast-message").value }, $("broadcast-result"));
  });
  $("invoke").addEventListener("submit", async (event) => {
    event.preventDefault();
    page.eventShown = $("invoke-event").value;
    const answer = await act("invoke", { function: page.fn, event: page.eventShown }, $("invoke-result"));
    const payload = $("invoke-payload");
    payload.hidden = !(answer && answer.payload !== undefined);
    if (!payload.hidden) {
      let text = answer.payload;
      try { text = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* shown as it came */ }
      payload.textContent = text;
    }
  });
  // Ctrl-Enter (or Cmd-Enter) in a message or event submits its form.
  for (const area of document.querySelectorAll("form textarea")) {
    area.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        area.form.requestSubmit();
      }
    });
  }

  // -- the live socket -------------------------------------------------------------------------------------
  function send(message) {
    if (page.socket && page.socket.readyState === WebSocket.OPEN) page.socket.send(JSON.stringify(message));
  }
  function tell() { send({ select: { connection: page.selected, function: page.fn } }); }
  function status(text, down) {
    const el = $("status");
    setText(el, text);
    el.classList.toggle("down", !!down);
  }

  function hello(message) {
    page.about = message.about;
    page.since = message.since;
    setText($("name"), page.about.name);
    setText($("where"), `stage ${page.about.stage} · ${page.about.wsUrl} · ${page.about.api}`);
    setText($("ws-url"), page.about.wsUrl);
    status(`live · counting frames and errors since ${clock(page.since)}`);
    for (const id of [...page.rows.keys()]) removeConnection(id); // the server sends every row again
    page.closed = page.selected !== null;
    tell();
    send({ registry: registryDetails.open ? "open" : "closed" });
  }
  function history(message) {
    if (message.connection === page.selected) resetConversation();
    if (message.function === page.fn) $("function-log").replaceChildren();
    entries(message.entries);
  }
  // A batch of entries: layout is read once before and the lists scrolled once after (reading it
  // between appends would lay the page out again for every line).
  const atBottom = (el) => el.scrollTop + el.clientHeight >= el.scrollHeight - 8;
  function entries(list) {
    const stream = $("function-log");
    const stickFrames = atBottom(frames), stickStream = atBottom(stream);
    const lines = [];
    for (const e of list) {
      if (page.selected !== null && e.conn === page.selected) conversationEntry(e);
      if (page.fn !== null && e.fn === page.fn && (e.data !== undefined || e.kind === "skipped")) lines.push(e);
    }
    if (lines.length) logLines(lines);
    if (stickFrames) frames.scrollTop = frames.scrollHeight;
    if (stickStream) stream.scrollTop = stream.scrollHeight;
  }
  function tick(message) {
    if (message.connections) {
      for (const id of message.connections.remove) removeConnection(id);
      for (const row of message.connections.upsert) upsertConnection(row);
      if (page.selected !== null && page.connections.has(page.selected) && page.closed) {
        page.closed = false;
        setText($("conversation-of"), page.selected);
      }
      countConnections();
    }
    if (message.functions) for (const row of message.functions) upsertFunction(row);
    if (message.entries) entries(message.entries);
  }
  const handlers = { hello, history, tick, registry: drawRegistry };

  function live() {
    if (!token) {
      status("This page needs its secret: open the URL that `wsctl local up` printed.", true);
      return;
    }
    const socket = new WebSocket(`ws://${location.host}/live?token=${encodeURIComponent(token)}`);
    page.socket = socket;
    socket.onopen = () => { page.retry = 500; };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      const handler = handlers[message.type];
      if (handler) handler(message);
    };
    socket.onclose = () => {
      status("The emulator is not answering (stopped?): trying again…", true);
      page.retry = Math.min(page.retry * 2, 5000);
      setTimeout(live, page.retry);
    };
  }
  countConnections();
  live();
})();
