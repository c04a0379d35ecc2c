// Runs: the table of run directories, and one run's figures and summary.
"use strict";

const $ = (id) => document.getElementById(id);

function fileUrl(run, name) {
  return `/api/run/file?${new URLSearchParams({ run, name })}`;
}

function metricText(m) {
  if (m.value === null || m.value === undefined) return "training…";
  const value = m.name.includes("accuracy") ? `${(m.value * 100).toFixed(2)}%` : num(m.value);
  return `${m.name} ${value}${m.note ? ` (${m.note})` : ""}`;
}

function date(text) {
  return text ? text.replace("T", " ").slice(0, 16) : "";
}

async function showList() {
  const data = await api("/api/runs");
  $("root").textContent = data.root;
  $("empty").classList.toggle("hidden", data.runs.length > 0);
  const rows = [...data.runs].sort((a, b) => (b.created || "").localeCompare(a.created || ""));
  $("runs").querySelector("tbody").replaceChildren(...rows.map((r) => {
    const tr = el("tr", { "data-run": r.id },
      el("td", {}, el("a", { href: `/runs?${new URLSearchParams({ run: r.id })}`, text: r.id })),
      el("td", {}, el("span", { class: `tag ${r.kind}`, text: r.kind })),
      el("td", { text: r.model }), el("td", { text: r.data }), el("td", { text: metricText(r.metric) }),
      el("td", { class: "num", text: r.epochs ?? "" }), el("td", { text: date(r.created) }));
    tr.addEventListener("click", (e) => { if (e.target.tagName !== "A") window.location = tr.querySelector("a").href; });
    return tr;
  }));
}

function figure(title, run, name) {
  return el("div", { class: "card" }, el("h2", { text: title }),
    el("img", { class: "figure-img", src: fileUrl(run, name), alt: title }));
}

async function showRun(run) {
  const d = await api(`/api/run?${new URLSearchParams({ run })}`);
  $("list-card").classList.add("hidden");
  $("lead").classList.add("hidden");
  $("detail").classList.remove("hidden");
  $("detail-title").textContent = `${d.id}: ${d.model} on ${d.data}`;
  const lead = [metricText(d.metric)];
  if (d.kind === "classifier") {
    if (d.best_epoch) lead.push(`best epoch ${d.best_epoch} of ${d.epochs}`);
    if (d.train_seconds) lead.push(`${d.train_seconds.toFixed(1)} s of training`);
    if (d.sizes && d.sizes.train) lead.push(`${d.sizes.train} train / ${d.sizes.val} val / ${d.sizes.test} test images`);
  } else if (d.headline && d.headline.sentence) {
    lead.push(d.headline.sentence);
  }
  if (d.device) lead.push(`device ${d.device}`);
  if (d.created) lead.push(`created ${date(d.created)}`);
  $("detail-lead").textContent = lead.join(" · ");
  $("report-link").href = fileUrl(d.id, "report.html");
  $("report-link").classList.toggle("hidden", !d.files.includes("report.html"));
  if (d.kind === "forecast") {
    $("forecast-link").href = `/forecast?${new URLSearchParams({ run: d.id })}`;
    $("forecast-link").classList.remove("hidden");
  }
  const shown = [["learning_curves.png", "Learning curves"], ["confusion_matrix.png", "Confusion matrix (test set)"],
    ["mistakes.png", "Most confidently misclassified test images"], ["plots/forecast.png", "Forecast vs actual (test span)"],
    ["plots/series.png", "The series and its splits"], ["plots/error_by_step.png", "Error by horizon step"],
    ["plots/learning_curves.png", "Learning curves"]];
  $("figures").replaceChildren(...shown.filter(([name]) => d.files.includes(name)).map(([name, title]) => figure(title, d.id, name)));
  $("summary").textContent = d.summary;
  $("summary-card").classList.toggle("hidden", !d.summary);
}

document.addEventListener("DOMContentLoaded", () => {
  const run = query("run");
  guarded(() => (run ? showRun(run) : showList()));
});
