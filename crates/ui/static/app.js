// Pavilion UI: copy buttons and the live page. Pages work without it.
// Data is only ever written with textContent, never as HTML.
"use strict";

function copyText(text, button) {
  const done = () => {
    button.textContent = "Copied";
    const status = document.getElementById("copy-status");
    if (status) status.textContent = "Copied to the clipboard";
    setTimeout(() => { button.textContent = "Copy"; }, 2000);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => fallbackCopy(text, done));
  } else {
    fallbackCopy(text, done);
  }
}

function fallbackCopy(text, done) {
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "sr-only";
  document.body.appendChild(area);
  area.select();
  try { document.execCommand("copy"); done(); } catch (e) { /* nothing to do */ }
  area.remove();
}

function setUpCopy() {
  document.querySelectorAll("button[data-copy]").forEach((b) => {
    b.hidden = false;
    b.addEventListener("click", () => {
      const source = document.getElementById(b.dataset.copy);
      if (source) copyText(source.textContent, b);
    });
  });
}

// The live page: one row per event, newest first, at most 50 kept.
function row(cells, numbered) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement("td");
    if (numbered && tr.cells.length === 0) td.className = "num";
    td.textContent = c == null ? "" : String(c);
    tr.appendChild(td);
  }
  return tr;
}

function setUpLive() {
  const events = document.getElementById("live-events");
  const transfers = document.getElementById("live-transfers");
  if (!events || !transfers || !window.EventSource) return;
  const status = document.getElementById("live-status");
  const after = Number(events.dataset.after || 0);
  const es = new EventSource("/ui/live/events?after=" + after);
  es.onopen = () => { status.textContent = "Connected: new events appear as they happen."; };
  es.onerror = () => { status.textContent = "Reconnecting…"; };
  es.onmessage = (m) => {
    let e;
    try { e = JSON.parse(m.data); } catch (x) { return; }
    const d = e.data || {};
    const when = e.time ? e.time.replace("T", " ").replace(/\.\d+/, "") : "";
    const what = [d.repository, d.tag ? ":" + d.tag : "", d.digest ? " " + d.digest.slice(0, 19) : ""].join("");
    const body = events.querySelector("tbody");
    body.prepend(row([e.pavilionseq || e.id, when, e.type, what], true));
    while (body.rows.length > 50) body.deleteRow(body.rows.length - 1);
    const empty = document.getElementById("events-empty");
    if (empty) empty.remove();
  };
  const ts = new EventSource("/ui/live/transfers");
  ts.addEventListener("transfers", (m) => {
    let doc;
    try { doc = JSON.parse(m.data); } catch (x) { return; }
    const list = doc.transfers || [];
    const body = transfers.querySelector("tbody");
    body.replaceChildren(...list.slice(0, 50).map((t) => row([
      t.direction, t.repository, (t.digest || "").slice(0, 19),
      formatBytes(t.bytes) + (t.total ? " of " + formatBytes(t.total) : ""),
      t.rate_bytes_per_second ? formatBytes(Math.round(t.rate_bytes_per_second)) + "/s" : "",
      t.eta_seconds != null ? Math.round(t.eta_seconds) + " s" : "",
    ])));
    document.getElementById("transfers-count").textContent =
      list.length === 1 ? "1 transfer in flight" : list.length + " transfers in flight";
  });
}

function formatBytes(n) {
  if (n == null) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = Number(n), u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? v + " B" : v.toFixed(1) + " " + units[u];
}

document.addEventListener("DOMContentLoaded", () => {
  setUpCopy();
  setUpLive();
});
