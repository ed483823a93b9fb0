// tidings admin: a few behaviours, no dependencies, no build step. Pages work without it
// except the live parts (the debugger's stream, the import's progress bar, the block editor's
// preview as the recipient is typed and its rules read back as they are edited).
"use strict";

// Copy buttons: <button data-copy="#id"> copies the value or text of the element #id.
function setUpCopyButtons() {
  document.querySelectorAll("button[data-copy]").forEach((button) => {
    button.hidden = false;
    button.addEventListener("click", async () => {
      const target = document.querySelector(button.dataset.copy);
      if (!target) return;
      const text = "value" in target ? target.value : target.textContent;
      const status = document.getElementById(button.dataset.status || "");
      try {
        await navigator.clipboard.writeText(text);
      } catch (err) {
        target.select && target.select();
        document.execCommand && document.execCommand("copy");
      }
      button.textContent = "Copied";
      if (status) status.textContent = "Copied to the clipboard.";
      setTimeout(() => { button.textContent = "Copy"; }, 2000);
    });
  });
}

// -- the live debugger -----------------------------------------------------------------------
function entryType(entry) {
  return entry.kind === "rejection" ? "rejected" : entry.type || "unknown";
}

function formatTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

function el(tag, attrs, children) {
  const node = document.createElement(tag);
  Object.entries(attrs || {}).forEach(([k, v]) => {
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  });
  (children || []).forEach((child) => child && node.appendChild(child));
  return node;
}

// The same markup as the server renders in debugger.html.
function renderEntry(entry) {
  const type = entryType(entry);
  const payload = entry.payload || {};
  const ids = [];
  if (payload && typeof payload === "object") {
    if (payload.userId) ids.push("userId " + payload.userId);
    if (payload.anonymousId) ids.push("anonymousId " + payload.anonymousId);
  }
  const name = entry.kind === "rejection"
    ? (payload && payload.event) || (payload && payload.type) || entry.endpoint
    : entry.event || entry.type;
  const head = el("div", { class: "entry-head" }, [
    el("span", { class: "badge " + type, text: type }),
    el("span", { class: "entry-name", text: name || "" }),
    ids.length ? el("span", { class: "entry-meta", text: ids.join(" · ") }) : null,
    el("time", { class: "entry-time", datetime: entry.receivedAt, text: formatTime(entry.receivedAt) }),
  ]);
  const children = [head];
  if (entry.kind === "rejection") {
    const reason = el("p", { class: "reason" }, [
      el("code", { text: entry.code }),
      document.createTextNode(entry.field ? " · " + entry.field + ": " : ": "),
      document.createTextNode(entry.message),
    ]);
    children.push(reason);
  }
  const raw = typeof entry.payload === "string" ? entry.payload : JSON.stringify(entry.payload, null, 2);
  children.push(el("details", {}, [el("summary", { text: "Raw payload" }), el("pre", { text: raw })]));
  return el("li", { class: "entry fresh", "data-type": type }, children);
}

function setUpDebugger() {
  const list = document.getElementById("entries");
  if (!list || !list.dataset.stream) return;
  const filter = document.getElementById("type-filter");
  const live = document.getElementById("live-status");
  const empty = document.getElementById("entries-empty");
  let afterSeq = Number(list.dataset.afterSeq || 0);
  let afterRejection = Number(list.dataset.afterRejection || 0);
  const maxEntries = 500;
  let source = null;

  function applyFilter() {
    const wanted = filter ? filter.value : "all";
    list.querySelectorAll(".entry").forEach((item) => {
      item.hidden = !(wanted === "all" || item.dataset.type === wanted);
    });
  }

  function add(entry) {
    if (entry.kind === "event") {
      if (entry.seq <= afterSeq) return;
      afterSeq = entry.seq;
    } else {
      if (entry.id <= afterRejection) return;
      afterRejection = entry.id;
    }
    const item = renderEntry(entry);
    list.insertBefore(item, list.firstChild);
    if (empty) empty.hidden = true;
    while (list.children.length > maxEntries) list.removeChild(list.lastChild);
    applyFilter();
  }

  function setState(state, text) {
    if (!live) return;
    live.dataset.state = state;
    live.textContent = text;
  }

  function connect() {
    const url = list.dataset.stream + "?after_seq=" + afterSeq + "&after_rejection=" + afterRejection;
    source = new EventSource(url);
    source.addEventListener("open", () => setState("open", "Live: new events appear as they arrive"));
    source.addEventListener("event", (msg) => add(JSON.parse(msg.data)));
    source.addEventListener("rejection", (msg) => add(JSON.parse(msg.data)));
    source.addEventListener("error", () => {
      // Reconnect from what is shown (the browser's own retry would start over).
      source.close();
      setState("error", "Disconnected: reconnecting…");
      setTimeout(connect, 2000);
    });
  }

  if (filter) filter.addEventListener("change", applyFilter);
  applyFilter();
  connect();
  window.addEventListener("pagehide", () => source && source.close());
}

// -- progress polled as JSON: a feed import, a campaign's send ------------------------------------
// Fetches `url` until `running(body)` is false (then reloads the page to show the outcome),
// handing each answer to `update`.
function pollProgress(url, running, update) {
  async function poll() {
    let body;
    try {
      const resp = await fetch(url, { headers: { Accept: "application/json" } });
      if (!resp.ok) throw new Error(String(resp.status));
      body = await resp.json();
    } catch (err) {
      setTimeout(poll, 2000);
      return;
    }
    if (!running(body)) {
      window.location.reload();
      return;
    }
    update(body);
    setTimeout(poll, 400);
  }
  poll();
}

function setUpImportProgress() {
  const box = document.getElementById("import-progress");
  if (!box || !box.dataset.poll) return;
  const bar = document.getElementById("import-bar");
  const label = document.getElementById("import-label");
  pollProgress(box.dataset.poll, (job) => job.status !== "done" && job.status !== "failed", (job) => {
    if (job.total === null) {
      bar.removeAttribute("value");
      label.textContent = "Reading the file…";
    } else {
      bar.value = job.percent;
      label.textContent = job.written.toLocaleString() + " of " + job.total.toLocaleString() +
        " rows written (" + job.percent + "%)";
    }
  });
}

function setUpSendProgress() {
  const box = document.getElementById("send-progress");
  if (!box || !box.dataset.poll) return;
  const bar = document.getElementById("send-bar");
  const label = document.getElementById("send-label");
  const running = (send) => send.status === "queued" || send.status === "sending";
  pollProgress(box.dataset.poll, running, (send) => {
    const handled = send.sent + send.bounced + send.failed;
    if (!send.total) return;
    bar.value = Math.floor((handled * 100) / send.total);
    label.textContent = handled.toLocaleString() + " of " + send.total.toLocaleString() +
      " emails handled";
  });
}

// -- the block editor -------------------------------------------------------------------------
// Shows the inputs of the chosen app, condition and fallback; reads each rule back in words
// (the server's rules.describe) as it is edited.
function toggleBy(scope, attr, value) {
  scope.querySelectorAll("[" + attr + "]").forEach((node) => {
    node.hidden = !node.getAttribute(attr).split(" ").includes(value);
  });
}

function csrfToken() {
  const field = document.querySelector("input[name='csrf_token']");
  return field ? field.value : "";
}

function setUpBlockEditor() {
  const form = document.getElementById("block-form");
  if (!form) return;
  form.querySelectorAll("[data-app-select]").forEach((select) => {
    const variant = select.closest(".variant");
    const apply = () => toggleBy(variant, "data-apps", select.value);
    select.addEventListener("change", apply);
    apply();
  });
  const fallback = form.querySelector("[data-fallback-kind]");
  if (fallback) {
    const apply = () => toggleBy(form, "data-fallback", fallback.value);
    fallback.addEventListener("change", apply);
    apply();
  }
  form.querySelectorAll("fieldset[data-rule]").forEach((group) => {
    const index = group.dataset.rule;
    const kind = group.querySelector("[data-rule-kind]");
    const out = document.getElementById("v" + index + "-rule-check");
    const prefix = "variants." + index + ".rule.";
    let timer = null;
    let asked = 0;
    async function check() {
      const body = new URLSearchParams({ csrf_token: csrfToken() });
      group.querySelectorAll("[name^='" + prefix + "']").forEach((input) => {
        body.append(input.name.slice(prefix.length), input.value);
      });
      const mine = ++asked;
      let answer;
      try {
        const resp = await fetch("/admin/blocks/rule", { method: "POST", body, headers: { Accept: "application/json" } });
        answer = await resp.json();
      } catch (err) {
        return;
      }
      if (mine !== asked || !out) return;
      out.dataset.state = answer.ok ? "ok" : "error";
      out.textContent = "";
      if (answer.ok) {
        out.append("Reads: ", el("strong", { text: answer.text }));
      } else {
        out.textContent = "Not valid yet: " + answer.message + (answer.field ? " (" + answer.field + ")" : "");
      }
    }
    const later = () => { clearTimeout(timer); timer = setTimeout(check, 250); };
    kind.addEventListener("change", () => { toggleBy(group, "data-kinds", kind.value); check(); });
    group.addEventListener("input", later);
    toggleBy(group, "data-kinds", kind.value);
  });
}

// The preview beside the editor: fetched again whenever the recipient, moment or inbox changes.
function setUpBlockPreview() {
  const form = document.getElementById("preview-form");
  const result = document.getElementById("preview-result");
  if (!form || !result || !form.dataset.preview) return;
  let timer = null;
  let asked = 0;
  async function refresh() {
    const params = new URLSearchParams();
    new FormData(form).forEach((value, key) => { if (value) params.append(key, value); });
    if (!params.get("recipient")) return;
    const mine = ++asked;
    result.setAttribute("aria-busy", "true");
    try {
      const resp = await fetch(form.dataset.preview + "?" + params.toString(), { headers: { Accept: "application/json" } });
      const body = await resp.json();
      if (mine !== asked) return;
      if (resp.ok) {
        result.innerHTML = body.html;  // rendered and escaped by the server's template
      } else {
        result.textContent = "";
        result.append(el("p", { class: "field-error", role: "alert", text: body.message || "The preview failed." }));
      }
    } catch (err) {
      if (mine === asked) result.textContent = "The preview could not be loaded.";
    } finally {
      if (mine === asked) result.removeAttribute("aria-busy");
    }
  }
  form.addEventListener("submit", (event) => { event.preventDefault(); refresh(); });
  form.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(refresh, 300); });
  form.addEventListener("change", () => { clearTimeout(timer); refresh(); });
}

// The creative tag of the chosen ESP.
function setUpTagSelect() {
  const select = document.querySelector("[data-tag-select]");
  if (!select) return;
  const apply = () => {
    document.querySelectorAll(".tag[data-esp]").forEach((tag) => { tag.hidden = tag.dataset.esp !== select.value; });
  };
  select.addEventListener("change", apply);
  apply();
}

document.addEventListener("DOMContentLoaded", () => {
  setUpCopyButtons();
  setUpDebugger();
  setUpImportProgress();
  setUpSendProgress();
  setUpBlockEditor();
  setUpBlockPreview();
  setUpTagSelect();
});
