// The dashboard page: polls the JSON API and renders it. No framework: a few render functions.
"use strict";

const SERIES = [
  ["request", "visible", "#2563eb", "requests waiting"],
  ["request", "in_flight", "#f59e0b", "requests in flight"],
  ["response", "visible", "#10b981", "responses waiting"],
  ["dead_letter", "visible", "#dc2626", "dead-lettered"],
];
const CHART_SPAN_MIN_S = 120; // the chart spans what was sampled: 2 to 10 minutes
const CHART_SPAN_MAX_S = 600;
let filters = {};
let storyId = null; // the request whose story is shown: refreshed with the rest

async function api(path, options) {
  const reply = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
  const data = await reply.json();
  if (!reply.ok) throw new Error(data.error || reply.statusText);
  return data;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else if (k === "onclick") node.addEventListener("click", v);
    else node[k] = v;
  }
  for (const c of children) node.append(c === null || c === undefined ? "-" : c);
  return node;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function when(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString();
}

function short(id) {
  return id && id.length > 13 ? id.slice(0, 8) + "…" : id || "-";
}

function idLink(id) {
  if (!id || id === "-") return "-";
  const a = el("a", { href: "#story-section", title: id, class: "id" }, short(id));
  a.addEventListener("click", () => showStory(id));
  return a;
}

function showError(message) {
  const banner = document.getElementById("error");
  banner.hidden = !message;
  banner.textContent = message || "";
}

async function refreshOverview() {
  const [o, h] = await Promise.all([api("/api/overview"), api("/api/queues/history")]);
  document.getElementById("env").textContent = o.env;
  document.getElementById("endpoint").textContent = o.endpoint_url || "AWS " + o.region;
  document.getElementById("readonly").hidden = !o.read_only;
  document.getElementById("updated").textContent = "updated " + when(o.now);
  showError(o.error);
  const cards = Object.entries(o.queues).map(([name, c]) =>
    el("div", { class: "tile", "data-queue": name },
      el("div", { class: "tile-name" }, name.replace("_", " ")),
      el("div", { class: "tile-value" }, String(c.visible)),
      el("div", { class: "tile-sub" }, `in flight ${c.in_flight} · delayed ${c.delayed}`)));
  document.getElementById("queue-cards").replaceChildren(...cards);
  const series = SERIES.map(([queue, field, color, label]) => ({
    color, label, points: h.points.map((p) => [p.at, p.queues[queue][field]]),
  }));
  const sampled = h.points.length ? o.now - h.points[0].at : 0;
  const span = Math.min(CHART_SPAN_MAX_S, Math.max(CHART_SPAN_MIN_S, Math.ceil(sampled / 60) * 60));
  drawChart(document.getElementById("queue-chart"), series, span);
  document.getElementById("chart-legend").replaceChildren(...series.map((s) =>
    el("span", {}, el("i"), s.label)));
  document.querySelectorAll("#chart-legend i").forEach((i, n) => { i.style.background = series[n].color; });
}

function flags(row) {
  const out = el("span");
  if (row.stale) out.append(el("span", { class: "flag bad" }, "STALE"));
  if (row.drain_requested) out.append(el("span", { class: "flag warn" }, "DRAIN"));
  return out;
}

function ageText(age) {
  return age === null || age === undefined ? "never" : `${age.toFixed(1)} s ago`;
}

async function refreshInstances() {
  const data = await api("/api/instances");
  document.getElementById("instance-count").textContent = `(${data.instances.length})`;
  fill(document.querySelector("#instances tbody"), data.instances.map((i) =>
    el("tr", { "data-instance-id": i.id, class: i.ec2_state === "terminated" ? "gone" : "" },
      el("td", { class: "id" }, i.id),
      el("td", {}, el("span", { class: "pill " + i.ec2_state }, i.ec2_state)),
      el("td", {}, i.state || "-"),
      el("td", {}, `${i.backend || "-"} · `, el("span", { class: "pill " + i.body }, i.body)),
      el("td", { class: "mono" }, i.code_version || "-"),
      el("td", { class: "num" }, String(i.jobs_done)),
      el("td", { class: "num" }, ageText(i.heartbeat_age_s)),
      el("td", {}, idLink(i.current_request)),
      el("td", {}, flags(i)))));
  const workers = document.getElementById("workers");
  workers.hidden = data.workers.length === 0;
  fill(workers.querySelector("tbody"), data.workers.map((w) =>
    el("tr", { "data-worker-id": w.worker_id },
      el("td", { class: "id" }, w.worker_id), el("td", {}, w.state),
      el("td", {}, el("span", { class: "pill " + w.process }, w.process)),
      el("td", { class: "num" }, String(w.jobs_done)),
      el("td", { class: "num" }, ageText(w.heartbeat_age_s)), el("td", {}, flags(w)))));
}

async function refreshScaler() {
  const data = await api("/api/scaler");
  const s = data.state;
  const facts = s ? [["leader", s.leader], ["token", s.token], ["desired", s.desired],
    ["decided", when(s.at)], ["reason", s.reason]] : [["leader", "none yet"]];
  document.getElementById("scaler").replaceChildren(...facts.flatMap(([k, v]) =>
    [el("dt", {}, k), el("dd", {}, v === undefined ? "-" : String(v))]));
  document.getElementById("decisions").replaceChildren(...data.decisions.slice(0, 12).map((d) =>
    el("li", {}, el("span", { class: "muted" }, when(d.at) + " "),
      el("b", {}, `→ ${d.desired}`), ` ${d.reason || ""}`)));
}

async function refreshActivity() {
  const query = new URLSearchParams(Object.assign({ limit: "200" }, filters));
  const data = await api("/api/activity?" + query);
  fill(document.querySelector("#activity tbody"), data.lines.map((x) =>
    el("tr", { "data-request-id": x.request_id, "data-event": x.event, class: "ev-" + x.status },
      el("td", { class: "muted" }, when(x.at_ms / 1000)),
      el("td", { class: "id" }, x.worker),
      el("td", {}, el("span", { class: "event" }, x.event)),
      el("td", {}, idLink(x.request_id !== "-" ? x.request_id : x.message_id)),
      el("td", {}, x.status),
      el("td", { class: "num" }, x.seconds),
      el("td", { class: "detail" }, x.detail))));
}

async function refreshDlq() {
  const data = await api("/api/dlq");
  document.getElementById("dlq-count").textContent = `(${data.messages.length})`;
  document.getElementById("redrive-all").disabled = data.messages.length === 0;
  fill(document.querySelector("#dlq tbody"), data.messages.map((m) =>
    el("tr", { "data-message-id": m.message_id },
      el("td", {}, idLink(m.message_id)), el("td", {}, idLink(m.request_id)),
      el("td", { class: "num" }, String(m.receive_count)),
      el("td", { class: "detail" }, m.reason || "(no reason logged)"),
      el("td", {}, el("button", { "data-redrive": m.message_id,
        onclick: () => redrive({ message_id: m.message_id }, `message ${m.message_id}`) }, "Redrive")))));
}

function confirmDialog(text) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
    dialog.showModal();
  });
}

async function redrive(body, what) {
  if (!(await confirmDialog(`Send ${what} back to the request queue?`))) return;
  const out = document.getElementById("redrive-result");
  try {
    const done = await api("/api/dlq/redrive", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(Object.assign({ confirm: true }, body)),
    });
    out.textContent = `redriven by ${done.method}: ${done.moved.length || "all"} ${done.note || ""}`;
  } catch (e) {
    out.textContent = "redrive failed: " + e.message;
  }
  refreshDlq().catch(() => {});
}

async function refreshJournal() {
  const data = await api("/api/journal");
  fill(document.querySelector("#journal tbody"), data.entries.slice(0, 200).map((e) =>
    el("tr", { "data-message-id": e.message_id },
      el("td", { class: "muted" }, when(e.at)), el("td", {}, idLink(e.message_id)),
      el("td", {}, el("span", { class: "pill " + e.status }, e.status || "-")),
      el("td", {}, e.auth_ok ? "ok" : "REFUSED"), el("td", {}, e.repeat ? "repeat" : ""))));
}

async function refreshReports() {
  const data = await api("/api/reports");
  const box = document.getElementById("reports");
  const parts = [];
  for (const r of data.chaos) {
    const scenarios = r.scenarios || [];
    parts.push(el("h3", {}, `${r.name} (${r.env || "?"}, seed ${r.seed ?? "?"})`));
    parts.push(el("ul", { class: "scenarios" }, ...scenarios.map((s) =>
      el("li", { class: s.passed ? "pass" : "fail" },
        el("b", {}, `${s.passed ? "✔" : "✘"} ${s.name}`),
        ` sent ${s.sent}, answered ${s.answered}, dead-lettered ${s.dead_lettered}, lost ${s.lost}, ` +
        `duplicate effects ${s.duplicate_effects} · ${s.seconds} s`,
        el("details", {}, el("summary", {}, "checks and timeline"),
          el("ul", {}, ...(s.notes || []).map((n) => el("li", { class: n.startsWith("BROKEN") ? "fail" : "" }, n))),
          el("ol", { class: "timeline" }, ...(s.timeline || []).map((t) =>
            el("li", {}, el("span", { class: "muted" }, `+${t.at} s `), t.event))))))));
  }
  for (const name of data.plots) {
    parts.push(el("figure", {}, el("img", { src: "/reports/" + encodeURIComponent(name), alt: name }),
      el("figcaption", {}, name)));
  }
  if (!parts.length) parts.push(el("p", { class: "muted" }, `No chaos reports or plots in ${data.folder} yet.`));
  box.replaceChildren(...parts);
}

async function showStory(id, quietly) {
  storyId = id;
  document.querySelector("#story-form input").value = id;
  const box = document.getElementById("story");
  if (!quietly) box.textContent = "loading…";
  try {
    const s = await api("/api/story?id=" + encodeURIComponent(id));
    const steps = s.lines.map((x) => el("li", { class: "ev-" + x.status },
      el("span", { class: "muted" }, when(x.at_ms / 1000) + " "), el("b", {}, x.event),
      ` on ${x.worker} (${x.status}) `, el("span", { class: "detail" }, x.detail)));
    box.replaceChildren(
      el("p", {}, `requests ${s.request_ids.join(", ") || "-"} · messages ${s.message_ids.join(", ") || "-"} · workers ${s.workers.join(", ") || "-"}`),
      steps.length ? el("ol", { class: "timeline" }, ...steps) : el("p", { class: "muted" }, "no activity logged for it"),
      el("p", {}, `callbacks received: ${s.callbacks.length}` + (s.dead_letters.length ? " · in the dead-letter queue" : "")));
  } catch (e) {
    box.textContent = "cannot show it: " + e.message;
  }
}

function every(ms, fn) {
  const run = () => fn().catch((e) => showError(e.message));
  run();
  setInterval(run, ms);
}

document.getElementById("filters").addEventListener("submit", (e) => {
  e.preventDefault();
  filters = Object.fromEntries([...new FormData(e.target)].filter(([, v]) => v));
  refreshActivity().catch((err) => showError(err.message));
});
document.getElementById("filters").addEventListener("reset", () => {
  filters = {};
  setTimeout(() => refreshActivity().catch(() => {}), 0);
});
document.getElementById("story-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const id = new FormData(e.target).get("id");
  if (id) showStory(id);
});
document.getElementById("redrive-all").addEventListener("click", () =>
  redrive({ all: true }, "every dead-lettered message"));

every(2000, refreshOverview);
every(3000, refreshInstances);
every(3000, refreshScaler);
every(3000, refreshActivity);
every(4000, refreshDlq);
every(4000, refreshJournal);
every(30000, refreshReports);
every(3000, async () => { if (storyId) await showStory(storyId, true); });
