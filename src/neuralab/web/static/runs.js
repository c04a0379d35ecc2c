// Runs: the table of run directories (with the form that starts a training), and one run's
// page: its curves, drawn again as each epoch ends while it trains, its figures and summary.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG_NS = "http://www.w3.org/2000/svg";
const POLL_MS = 1000;         // the run page asks for news once a second while the run is live
const LIST_POLL_MS = 2000;    // the list, while something trains or waits
// and while nothing does: a training started in a terminal (a learner's, into the shared runs folder)
// appears on the list left open on the projector
const LIST_IDLE_MS = 10000;
const ACTIVE = ["queued", "running", "stopping"];
const RETRY_MAX_MS = 10000;   // after failed polls (the app stopped or restarting): each wait doubles up to this

function fileUrl(run, name) {
  return `/api/run/file?${new URLSearchParams({ run, name })}`;
}

function runUrl(run) {
  return `/runs?${new URLSearchParams({ run })}`;
}

// The headline figure of a run, or what its status says where it has none: only a running run
// is "training", one this server's job is about to train again "resuming" (the server's status);
// a damaged one says what is wrong, one stopped before its first epoch says so.
function metricText(m, r) {
  if (m.value === null || m.value === undefined) {
    if (r.status === "damaged") return r.error || "damaged";
    if (r.status === "interrupted") return r.epochs ? "no finite figure yet" : "stopped before its first epoch";
    if (r.status === "resuming" || r.status === "starting") return `${r.status}…`;
    return r.status === "running" ? "training…" : m.note || "–";
  }
  const value = m.name.includes("accuracy") ? `${(m.value * 100).toFixed(2)}%` : num(m.value);
  return `${m.name} ${value}${m.note ? ` (${m.note})` : ""}`;
}

function date(text) {
  return text ? text.replace("T", " ").slice(0, 16) : "";
}

function post(path, body) {
  return api(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
}

// --- the list and the form ------------------------------------------------------------

async function showList(first = false) {
  const [data, jobs] = await Promise.all([api("/api/runs"), api(first ? "/api/jobs?choices" : "/api/jobs")]);
  if (data.root) $("root").replaceChildren(el("code", { text: data.root }));  // only the local app names its folder
  // the app on this machine gives the command with its own folder: the one it would list
  if (data.train) $("empty-how").replaceChildren("Train one: ", el("code", { text: data.train }));
  $("empty").classList.toggle("hidden", data.runs.length > 0);
  const rows = [...data.runs].sort((a, b) => (b.created || "").localeCompare(a.created || ""));
  $("runs").querySelector("tbody").replaceChildren(...rows.map((r) => {
    const tr = el("tr", { "data-run": r.id },
      el("td", {}, el("a", { href: runUrl(r.id), text: r.id })),
      el("td", {}, el("span", { class: `tag ${r.kind}`, text: r.kind })),
      el("td", { text: r.model }), el("td", { text: r.data }),
      el("td", {}, el("span", { class: `tag ${r.status}`, text: r.status })),
      el("td", { text: metricText(r.metric, r) }),
      el("td", { class: "num", text: r.epochs ?? "" }), el("td", { text: date(r.created) }));
    tr.addEventListener("click", (e) => { if (e.target.tagName !== "A") window.location = tr.querySelector("a").href; });
    return tr;
  }));
  showJobs(jobs);
  const live = rows.some((r) => r.status === "running") || jobs.jobs.some((j) => ACTIVE.includes(j.state));
  poll(showList, live ? LIST_POLL_MS : LIST_IDLE_MS);
  return jobs;
}

// Run ``ask`` after ``ms``. Where it fails (the app stopped or restarting, a network gone), say so
// and ask again, waiting twice as long each time up to RETRY_MAX_MS, until it answers: a page
// left open over a restart then shows the run as it is. A 404 is said and not asked again: what
// was asked for is gone, the app answers. ``ask`` schedules its own next poll; one waits per
// ``ask``: a click that shows the list again (Stop) replaced none, and each click left one more
// loop asking every 2 s. A tab out of sight asks nothing, and asks at once when seen again.
const pending = new Map();
const unseen = new Map();  // ask -> ms, put off while the tab is hidden

function poll(ask, ms) {
  clearTimeout(pending.get(ask));
  pending.set(ask, setTimeout(() => asking(ask, ms), ms));
}

async function asking(ask, ms) {
  pending.delete(ask);
  if (document.hidden) {
    unseen.set(ask, ms);
    return;
  }
  try {
    await ask();
    showError("");
  } catch (e) {
    if (e.status === 404) return showError(e.message);
    const wait = Math.min(ms * 2, RETRY_MAX_MS);
    showError(`${e.message}; asking again every ${Math.round(wait / 1000)} s.`);
    poll(ask, wait);
  }
}

document.addEventListener("visibilitychange", () => {
  if (document.hidden) return;
  const asks = [...unseen];
  unseen.clear();
  for (const [ask, ms] of asks) asking(ask, ms);
});

function showJobs(jobs) {
  $("train-card").classList.toggle("hidden", !jobs.local);
  const shown = [...jobs.jobs].reverse().slice(0, 10);
  $("jobs").classList.toggle("hidden", !shown.length);
  $("jobs").querySelector("tbody").replaceChildren(...shown.map((j) => el("tr", { "data-job": j.id },
    el("td", { class: "num", text: j.id }), el("td", {}, el("a", { href: runUrl(j.run), text: j.run })),
    el("td", {}, el("span", { class: `tag ${j.state}`, text: j.state })),
    el("td", {}, el("code", { text: j.error || j.command })),
    el("td", {}, ACTIVE.includes(j.state) && j.state !== "stopping"
      ? el("button", { type: "button", text: j.state === "queued" ? "Cancel" : "Stop",
        onclick: () => guarded(async () => { await post("/api/jobs/stop", { run: j.run }); await showList(); }) })
      : ""))));
}

function fillForm(choices) {
  const option = (value, text) => el("option", { value, text });
  $("train-model").replaceChildren(...choices.models.map((m) => option(m, m)));
  $("train-model").value = choices.defaults.model;
  $("train-data").replaceChildren(...choices.datasets.map((d) =>
    option(d.name, d.found ? d.name : `${d.name} (not on this machine)`)));
  $("train-data").value = choices.defaults.data;
  for (const [name, recipe] of Object.entries(choices.recipes)) {
    $("train-recipe").append(option(name, `${name} (${recipe.epochs} epochs)`));
  }
  $("train-epochs").value = choices.defaults.epochs;
  $("train-recipe").addEventListener("change", () => {
    const recipe = choices.recipes[$("train-recipe").value];
    $("train-epochs").value = recipe ? "" : choices.defaults.epochs;
    $("train-epochs").placeholder = recipe ? String(recipe.epochs) : "";
  });
  $("train-form").addEventListener("submit", (e) => {
    e.preventDefault();
    guarded(async () => {
      const whole = (id) => ($(id).value === "" ? null : Number($(id).value));
      const job = await post("/api/jobs/start", {
        model: $("train-model").value, data: $("train-data").value, recipe: $("train-recipe").value,
        epochs: whole("train-epochs"), seed: whole("train-seed"),
      });
      window.location = runUrl(job.run);
    });
  });
}

// --- one run ----------------------------------------------------------------------------

function figure(title, run, name) {
  return el("div", { class: "card" }, el("h2", { text: title }),
    el("img", { class: "figure-img", src: fileUrl(run, name), alt: title }));
}

function openDetail() {  // once its title is known: the page never shows an empty run
  $("list-card").classList.add("hidden");
  $("lead").classList.add("hidden");
  $("detail").classList.remove("hidden");
}

// "ID: MODEL on DATA"; a run Keras's fit logged, or one imported from a Keras file, names no data
function runTitle(d) {
  if (d.status === "damaged") return `${d.id}: damaged`;
  return `${d.id}: ${d.model}${d.data ? ` on ${d.data}` : ""}`;
}

function runLead(d) {
  const lead = [metricText(d.metric, d)];
  if (d.kind === "image-classifier") {
    if (d.best_epoch) lead.push(`best epoch ${d.best_epoch} of ${d.epochs}`);
    if (d.train_seconds) lead.push(`${d.train_seconds.toFixed(1)} s of training`);
    if (d.sizes && d.sizes.train) lead.push(`${d.sizes.train} train / ${d.sizes.val} val / ${d.sizes.test} test images`);
  } else if (d.headline && d.headline.sentence) {
    lead.push(d.headline.sentence);
  }
  if (d.imported) lead.push("imported from a Keras file, not trained here");
  if (d.device) lead.push(`device ${d.device}`);
  if (d.created) lead.push(`created ${date(d.created)}`);
  return lead.join(" · ");
}

async function showRun(run) {
  let state;
  try {
    state = await api(`/api/run/live?${new URLSearchParams({ run })}`);
  } catch (e) {
    if (e.status === 404) return gone(run, e);
    throw e;
  }
  if (state.status === "starting") {  // queued by this server: no folder yet, or none it has locked
    $("detail-title").textContent = `${run}: waiting to start`;
    openDetail();
    $("detail-lead").textContent = state.job ? state.job.command : "";
    ["report-link", "summary-card"].forEach((id) => $(id).classList.add("hidden"));
    return watch(run, state);
  }
  const d = await api(`/api/run?${new URLSearchParams({ run })}`);
  $("detail-title").textContent = runTitle(d);
  openDetail();
  $("detail-lead").textContent = runLead(d);
  $("report-link").href = fileUrl(d.id, "report.html");
  $("report-link").classList.toggle("hidden", !d.files.includes("report.html"));
  if (d.kind === "forecaster") {
    $("forecast-link").href = `/forecast?${new URLSearchParams({ run: d.id })}`;
    $("forecast-link").classList.remove("hidden");
  }
  const titles = { learning_curves: "Learning curves", confusion_matrix: "Confusion matrix (test set)",
    mistakes: "Most confidently misclassified test images", forecast: "Forecast vs actual (test span)",
    series: "The series and its splits", error_by_step: "Error by horizon step" };
  $("figures").replaceChildren(...Object.entries(d.figures || {}).filter(([name]) => titles[name])
    .map(([name, file]) => figure(titles[name], d.id, file)));
  $("summary").textContent = d.summary;
  $("summary-card").classList.toggle("hidden", !d.summary);
  $("live-title").textContent = d.imported ? "Imported, not trained here" : "Training";
  $("run-status").classList.toggle("hidden", Boolean(d.imported));
  watch(run, state, d.kind);
}

// A run the app does not know: where this server's last job for it was cancelled (queued, or stopped
// before it made its folder) the page says so, with nothing to resume; otherwise (deleted, moved,
// misspelt) ``error``, the server's line. Either way there is nothing more to ask.
async function gone(run, error) {
  const job = (await api("/api/jobs")).jobs.filter((j) => j.run === run).pop();
  if (!job || job.state !== "cancelled") throw error;
  $("detail-title").textContent = `${run}: cancelled`;
  openDetail();
  $("detail-lead").textContent = `Job ${job.id} was cancelled before it started: the run has no folder, `
    + "nothing to resume. Start a new training from All runs.";
  ["report-link", "summary-card", "stop", "resume", "progress-line", "curves"].forEach((id) => $(id).classList.add("hidden"));
  $("run-status").textContent = "cancelled";
  $("run-status").className = "tag cancelled";
  $("job-note").textContent = "";
}

// Draw what /api/run/live says, then ask again while the run trains or a job waits for it;
// once it stops, the page's figures are fetched again (no reload).
let local = false;

function isLive(state) {
  return state.status === "running" || state.status === "starting" || Boolean(state.job);
}

function watch(run, state, kind) {
  drawLive(run, state, kind);
  if (!isLive(state)) return;
  poll(async () => {
    let next;
    try {
      next = await api(`/api/run/live?${new URLSearchParams({ run })}`);
    } catch (e) {
      if (e.status === 404) return gone(run, e);  // its queued job cancelled, or its folder deleted
      throw e;
    }
    const created = state.status === "starting" && next.status !== "starting";  // its folder is there now
    if (isLive(next) && !created) watch(run, next, kind);
    else await showRun(run);
  }, POLL_MS);
}

function drawLive(run, state, kind) {
  $("run-status").textContent = state.job && state.job.state === "queued" ? "queued" : state.status;
  $("run-status").className = `tag ${state.status}`;
  const p = state.status === "running" ? state.progress : null;
  $("progress-line").classList.toggle("hidden", !p);
  if (p) {
    $("progress-bar").value = p.steps ? p.step / p.steps : 0;
    const parts = [`epoch ${p.epoch}/${p.epochs}`, `step ${p.step}/${p.steps}`];
    if (p.samples_per_s) parts.push(`${Math.round(p.samples_per_s).toLocaleString("en")} samples/s`);
    if (p.eta_s !== null && p.eta_s !== undefined) parts.push(`${Math.ceil(p.eta_s)} s left in this epoch`);
    $("progress-text").textContent = parts.join(" · ");
  }
  const job = state.job;
  $("stop").classList.toggle("hidden", !(job && ["queued", "running"].includes(job.state)));
  $("stop").textContent = job && job.state === "queued" ? "Cancel" : "Stop (as Ctrl-C)";
  const resumable = local && !job && state.status === "interrupted" && !state.resume_refused;
  $("resume").classList.toggle("hidden", !resumable);
  // a resume that failed is said beside Resume, as the jobs table says it: the run itself reads as before
  const failed = state.failed_job ? `job ${state.failed_job.id} failed: ${state.failed_job.error}` : "";
  $("job-note").textContent = job ? `job ${job.id} ${job.state}`
    : local && state.status === "interrupted" ? [failed, state.resume_refused].filter(Boolean).join("; ") : "";
  // no epoch to draw and none coming (an imported model, a run stopped before its first epoch): no empty charts
  $("curves").classList.toggle("hidden", !state.metrics.length && !isLive(state));
  const forecast = (kind || "") === "forecaster" || state.metrics.some((r) => "mae" in r);
  const metric = forecast ? "mae" : "accuracy";
  // a forecast network's figures are of the target as it trains on it (scaled, or its change): said
  const of = forecast && state.trained_on ? ` ${state.trained_on}` : "";
  curve($("curve-loss"), state.metrics, ["loss", "val_loss"], `loss${of}`, state.progress);
  curve($("curve-metric"), state.metrics, [metric, `val_${metric}`], forecast ? `MAE${of}` : metric, state.progress);
}

function svgEl(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

// One chart: a line and a dot per finished epoch for each series present (train, val).
function curve(box, metrics, names, title, progress) {
  const W = 640, H = 260, L = 70, R = 20, T = 30, B = 40;
  const colors = { 0: "#1f5fbf", 1: "#e8590c" };
  const present = names.filter((n) => metrics.some((r) => typeof r[n] === "number"));
  const values = present.flatMap((n) => metrics.map((r) => r[n]).filter((v) => typeof v === "number"));
  const epochs = Math.max(metrics.length, progress ? progress.epochs : 0, 1);
  const lo = values.length ? Math.min(...values) : 0, hi = values.length ? Math.max(...values) : 1;
  const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.05 || 0.5;
  // one epoch sits in the middle: its axis runs from epoch 1 to epoch 1, as the run's header says
  const x = (e) => (epochs === 1 ? (L + W - R) / 2 : L + (W - L - R) * ((e - 1) / (epochs - 1)));
  const y = (v) => T + (H - T - B) * (1 - (v - lo + pad) / (hi - lo + 2 * pad));
  const chart = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": `${title} by epoch` });
  chart.append(svgEl("text", { x: L, y: 20 }, `${title} by epoch`),
    svgEl("line", { x1: L, x2: L, y1: T, y2: H - B, stroke: "#868e96" }),
    svgEl("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: "#868e96" }),
    svgEl("text", { x: L - 8, y: y(hi) + 5, "text-anchor": "end" }, num(hi)),
    svgEl("text", { x: L - 8, y: y(lo) + 5, "text-anchor": "end" }, num(lo)),
    ...(epochs === 1 ? [svgEl("text", { x: x(1), y: H - 14, "text-anchor": "middle" }, "epoch 1")] :
      [svgEl("text", { x: L, y: H - 14, "text-anchor": "middle" }, "1"),
        svgEl("text", { x: W - R, y: H - 14, "text-anchor": "end" }, `epoch ${epochs}`)]));
  present.forEach((name, i) => {
    const color = colors[names.indexOf(name)];
    const points = metrics.filter((r) => typeof r[name] === "number");
    chart.append(svgEl("path", { d: points.map((r, k) => `${k ? "L" : "M"}${x(r.epoch).toFixed(1)},${y(r[name]).toFixed(1)}`).join(""),
      fill: "none", stroke: color, "stroke-width": 2.5 }));
    for (const r of points) {
      chart.append(svgEl("circle", { cx: x(r.epoch), cy: y(r[name]), r: 5, fill: color, class: `point ${name}`,
        "data-epoch": r.epoch }, null));
    }
    const at = W - R - 150 * (present.length - i);
    chart.append(svgEl("line", { x1: at, x2: at + 24, y1: 15, y2: 15, stroke: color, "stroke-width": 4 }),
      svgEl("text", { x: at + 30, y: 20 }, name.startsWith("val_") ? "validation" : "training"));
  });
  box.replaceChildren(chart);
}

document.addEventListener("DOMContentLoaded", () => {
  const run = query("run");
  $("stop").addEventListener("click", () => guarded(async () => {
    await post("/api/jobs/stop", { run });
    $("stop").classList.add("hidden");
  }));
  $("resume").addEventListener("click", () => guarded(async () => {
    $("resume").classList.add("hidden");
    try {
      await post("/api/jobs/resume", { run });
    } catch (e) {
      // refused: mostly another tab's Resume came first (409, already queued or training); the page
      // follows the run as it is now, with Stop, or Resume again where it still is interrupted
      await showRun(run).catch(() => $("resume").classList.remove("hidden"));
      throw e;
    }
    await showRun(run);
  }));
  guarded(async () => {
    const jobs = run ? await api("/api/jobs") : await showList(true);
    local = jobs.local;
    if (run) await showRun(run);
    else if (jobs.local) fillForm(jobs.choices);
  });
});
