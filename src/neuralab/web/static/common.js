// Shared by every page: the navigation bar, calls to the JSON API, errors, small helpers.
"use strict";

const PAGES = [["/conv", "Convolution"], ["/classify", "Classifier"], ["/runs", "Runs"], ["/forecast", "Forecast"]];

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function showError(message) {
  const box = document.getElementById("error");
  if (!box) return;
  box.textContent = message || "";
  box.classList.toggle("hidden", !message);
}

// fetch + JSON, with the server's one-line error message on failure
async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (e) {  // no answer at all: the browser's own words ("Failed to fetch") tell a learner nothing
    throw new Error("The web app is not answering (stopped, or restarting?)");
  }
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    // the status goes with it: a 404 (the run is gone) is no reason to ask again, as "not answering" is
    const error = new Error((body && body.error) || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

// run an async action, showing its error in the page's error box instead of failing silently
async function guarded(action) {
  try {
    const result = await action();
    showError("");
    return result;
  } catch (e) {
    showError(e.message);
    return null;
  }
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

// numbers for people: whole numbers as they are, others with up to 3 decimals
function num(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  if (Number.isInteger(x)) return String(x);
  const a = Math.abs(x);
  const s = a >= 1000 ? x.toFixed(0) : a >= 10 ? x.toFixed(2) : x.toFixed(3);
  return s.replace(/\.?0+$/, "");
}

function article(word) {  // "an interrupted run", "a finished run"
  return /^[aeiou]/i.test(word || "") ? "an" : "a";
}

function query(name) {
  return new URLSearchParams(window.location.search).get(name);
}

// a <select> of run directories of one kind; keeps ?run= in the address bar. Finished runs, and with
// `interrupted` the interrupted ones too (marked) that finished an epoch: a classifier classifies with its
// best epoch so far, and one stopped before its first has no weights yet. ``wayOn(run, listed)``, where
// given, says how to go on with a run of this kind that is not offered (a sentence, or ""); ``listed`` is
// its row of /api/runs.
async function runPicker(select, kind, note, interrupted = false, wayOn = null) {
  const data = await api("/api/runs");
  const mine = data.runs.filter((r) => r.kind === kind
    && (r.finished || (interrupted && r.status === "interrupted" && r.epochs > 0)));
  select.replaceChildren(...mine.map((r) => el("option", { value: r.id,
    text: `${r.id}  (${r.model}${r.data ? `, ${r.data}` : ""})${r.finished ? "" : "  [interrupted]"}` })));
  const wanted = query("run");
  const said = [];
  if (wanted && mine.some((r) => r.id === wanted)) select.value = wanted;
  else if (wanted) {
    const found = data.runs.find((r) => r.id === wanted);
    // an interrupted run is offered where it kept an epoch: "an interrupted run" would not say why this one is not
    const early = found && interrupted && found.kind === kind && found.status === "interrupted" && !(found.epochs > 0);
    const what = !found ? "no such run"
      : early ? "interrupted before its first epoch: nothing kept yet, no model to use"
        : `${article(found.status)} ${found.status} ${found.kind || ""} run`.replace(/ +run$/, " run");
    said.push(`Run ${wanted} is not offered here (${what}); showing ${mine.length ? select.value : "none"} instead.`);
    if (found && found.kind === kind && wayOn) said.push(await wayOn(wanted, found));
  }
  if (!mine.length) said.push(`No ${interrupted ? "finished or interrupted" : "finished"} ${kind} runs in the runs folder.`);
  if (note) {
    note.textContent = said.filter(Boolean).join(" ");
    note.classList.toggle("hidden", !said.length);
  }
  select.addEventListener("change", () => {
    const url = new URL(window.location.href);
    url.searchParams.set("run", select.value);
    history.replaceState(null, "", url);
  });
  return mine;
}

document.addEventListener("DOMContentLoaded", () => {
  const top = document.getElementById("top");
  if (!top) return;
  const here = window.location.pathname;
  top.append(el("a", { class: "brand", href: "/", text: "neuralab" }),
    el("nav", {}, ...PAGES.map(([href, label]) => el("a", { href, text: label, class: here === href ? "here" : "" }))));
});
