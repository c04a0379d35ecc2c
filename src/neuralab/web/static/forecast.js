// Forecast: a run's verdict, forecast vs actual on the test span (an SVG chart with a toggle
// per forecaster), the table of every forecaster, and the run's own figures.
"use strict";

const $ = (id) => document.getElementById(id);
const COLORS = ["#1f5fbf", "#e8590c", "#2b8a3e", "#ae3ec9", "#f59f00", "#d6336c", "#0c8599", "#5c940d"];
const SVG = "http://www.w3.org/2000/svg";
let view = null;
const shown = new Set();

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

function ticks(lo, hi, count) {
  const span = hi - lo || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const stepSize = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / stepSize) * stepSize; v <= hi + 1e-9; v += stepSize) out.push(v);
  return out;
}

function drawChart() {
  const data = view.steps[$("step").value || "1"];
  if (!data) return;
  const W = 1300, H = 460, L = 80, R = 20, T = 20, B = 50;
  const series = [["actual", "#111", 3.5], ...view.forecasters.filter((n) => shown.has(n))
    .map((n) => [n, COLORS[view.forecasters.indexOf(n) % COLORS.length], 2.5])];
  // The network's intervals, widest first, drawn under the lines as bands (polygons, not paths).
  const net = view.intervals.forecaster;
  const levels = shown.has(net) ? [...view.intervals.levels].sort((a, b) => b - a) : [];
  const bands = levels.map((k) => [k, data[`lower_${k}`], data[`upper_${k}`]]).filter(([, lo, up]) => lo && up);
  const values = [...series.flatMap(([n]) => data[n]), ...bands.flatMap(([, lo, up]) => [...lo, ...up])]
    .filter((v) => v !== null && v !== undefined);
  const lo = Math.min(...values), hi = Math.max(...values), pad = (hi - lo) * 0.05 || 1;
  const n = data.time.length;
  const x = (i) => L + (W - L - R) * (n > 1 ? i / (n - 1) : 0.5);
  const y = (v) => T + (H - T - B) * (1 - (v - lo + pad) / (hi - lo + 2 * pad));
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": "forecast vs actual" });
  for (const v of ticks(lo - pad, hi + pad, 6)) {
    chart.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#e9ecef" }),
      svg("text", { x: L - 10, y: y(v) + 5, "text-anchor": "end" }, num(v)));
  }
  for (let k = 0; k < 6; k++) {
    const i = Math.round((k * (n - 1)) / 5);
    const anchor = k === 0 ? "start" : k === 5 ? "end" : "middle";
    chart.append(svg("text", { x: x(i), y: H - 18, "text-anchor": anchor }, (data.time[i] || "").slice(0, 10)));
  }
  chart.append(svg("line", { x1: L, x2: L, y1: T, y2: H - B, stroke: "#868e96" }),
    svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: "#868e96" }));
  const netColor = COLORS[Math.max(0, view.forecasters.indexOf(net)) % COLORS.length];
  bands.forEach(([k, lower, upper], j) => {
    const upperPts = [], lowerPts = [];
    upper.forEach((v, i) => { if (v !== null && lower[i] !== null) { upperPts.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`); lowerPts.unshift(`${x(i).toFixed(1)},${y(lower[i]).toFixed(1)}`); } });
    const band = svg("polygon", { points: [...upperPts, ...lowerPts].join(" "), fill: netColor,
      "fill-opacity": j === bands.length - 1 ? 0.25 : 0.12, stroke: "none", class: "band", "data-level": k });
    band.append(svg("title", {}, `${net}: ${k}% prediction interval`));
    chart.append(band);
  });
  for (const [name, color, width] of series) {
    let d = "";
    data[name].forEach((v, i) => { if (v !== null) d += `${d ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`; });
    chart.append(svg("path", { d, fill: "none", stroke: color, "stroke-width": width, "data-name": name }));
  }
  $("chart").replaceChildren(chart);
  const covered = bands.map(([k]) => {
    const c = view.intervals.coverage[k];
    return `${k}% interval` + (c === null || c === undefined ? "" : ` (covered ${(100 * c).toFixed(1)}% of the test targets)`);
  });
  const named = view.series ? `series ${view.series}, ` : "";  // a run on several series shows one at a time
  // a run recorded before each series' coverage was: results.json holds it over every series only
  const pooled = view.intervals.pooled ? " (coverage pooled over every series)" : "";
  $("chart-note").textContent = `· ${named}${view.target}, ${n} forecasts, ${data.time[0].slice(0, 10)} to ${data.time[n - 1].slice(0, 10)}`
    + (covered.length ? `; shaded: ${net}'s ${covered.reverse().join(", ")}${pooled}` : "");
}

// The shown series' own train / validation / test spans (a run recorded before they were per
// series knows only the test span of a series other than the first).
function spans() {
  let node = $("spans");
  if (!node) {
    node = el("p", { id: "spans", class: "muted small" });
    $("chart").after(node);
  }
  const parts = ["train", "val", "test"].filter((k) => Array.isArray(view.spans?.[k]) && view.spans[k].length === 2)
    .map((k) => `${k} ${view.spans[k][0]} .. ${view.spans[k][1]}`);
  node.textContent = parts.length ? `Target spans${view.series ? ` of series ${view.series}` : ""}: ${parts.join(", ")}` : "";
}

function toggles() {
  $("toggles").replaceChildren(el("label", {}, el("span", { class: "swatch actual-swatch" }), "actual"),
    ...view.forecasters.map((name, i) => {
      const box = el("input", { type: "checkbox", value: name });
      box.checked = shown.has(name);
      box.addEventListener("change", () => { if (box.checked) shown.add(name); else shown.delete(name); drawChart(); });
      const swatch = el("span", { class: "swatch" });
      swatch.style.background = COLORS[i % COLORS.length];
      return el("label", {}, box, swatch, name);
    }));
  $("toggles").querySelector(".actual-swatch").style.background = "#111";
}

const ratio = (r) => (r === null || r === undefined ? "" : `${r.toFixed(3)} x`);
const SCORES_NOTE = "MAE and RMSE are in the units of the target. MASE below 1 beats the one-step naive forecast's "
  + "error on the training span. \"vs best baseline\": the forecaster's error divided by the best baseline's "
  + "(below 1 beats every baseline). The shaded bands are the network's prediction intervals.";

function scores() {
  // A run on several series: the table is the shown series' own (scores_of), with the pooled
  // figures the run's verdict ranks by in their own, labelled columns; "" where results.json has none.
  const own = view.scores_of;
  const pooled = own ? view.scores[0]?.pooled?.metric.toUpperCase() || "MASE" : "";
  const heads = ["Forecaster", "MAE", "RMSE", "MAPE %", "MASE", "vs best baseline",
    ...(own ? [`pooled ${pooled}`, "pooled vs best baseline"] : []), "Fitted"];
  $("scores").querySelector("thead").replaceChildren(el("tr", {}, ...heads.map((h) => el("th", { text: h }))));
  $("scores-title").textContent = own ? `Every forecaster on series ${own}'s test span (best first by MAE)`
    : view.all_series.length > 1 ? "Every forecaster on the test span, pooled over every series (best first)"
    : "Every forecaster on the test span (best first)";
  $("scores-note").textContent = own
    ? `MAE, RMSE, MAPE, MASE and "vs best baseline" are series ${own}'s alone, MAE and RMSE in its units of the target. `
      + `The pooled columns are over every series, by ${pooled} (each series' errors over its own scale), which `
      + "the run's verdict ranks by. The shaded bands are the network's prediction intervals."
    : view.all_series.length > 1 ? "Every figure is pooled over every series: MAE and RMSE mix the series' units; "
      + "the verdict ranks by MASE. The shaded bands are the network's prediction intervals." : SCORES_NOTE;
  $("scores").querySelector("tbody").replaceChildren(...view.scores.map((s) => el("tr", { class: s.network ? "hl" : "" },
    el("td", { text: s.name + (s.network ? " (network)" : "") }),
    el("td", { class: "num", text: num(s.mae) }), el("td", { class: "num", text: num(s.rmse) }),
    el("td", { class: "num", text: num(s.mape) }), el("td", { class: "num", text: num(s.mase) }),
    el("td", { text: ratio(s.vs_best_baseline) }),
    ...(own ? [el("td", { class: "num", text: num(s.pooled?.score) }), el("td", { text: ratio(s.pooled?.vs_best_baseline) })] : []),
    el("td", { class: "small fitted", text: s.fitted }))));
}

// A verdict's colour by its outcome: bad news where a baseline wins or nothing is ranked, none where the test span
// is too short to judge (no better, no worse), good news otherwise (a win or a tie with the baselines)
function verdictClass(outcome) {
  if (outcome === "too-short") return "verdict";
  return `verdict ${["baseline", "constant", "unranked"].includes(outcome) ? "bad" : "good"}`;
}

// The shown series' own verdict (by MAE, in its units), beside the pooled one; none for a run on one series.
function seriesVerdict() {
  let node = $("series-verdict");
  if (!node) {
    node = el("p", { id: "series-verdict" });
    $("verdict").after(node);
  }
  const v = view.series_verdict;
  node.classList.toggle("hidden", !v || !v.sentence);
  if (!v || !v.sentence) return;
  node.textContent = `Series ${view.series} alone: ${v.sentence}`;
  node.className = verdictClass(v.outcome);
}

async function load(run, series = "") {
  view = await api(`/api/forecast?${new URLSearchParams({ run, series })}`);
  $("series").replaceChildren(...view.all_series.map((s) => el("option", { value: s, text: s })));
  $("series").value = view.series;
  $("series-label").classList.toggle("hidden", view.all_series.length < 2);
  $("view").classList.remove("hidden");
  const head = view.headline;
  const several = view.all_series.length > 1;
  $("verdict").textContent = (several && head.sentence ? "Over every series: " : "") + (head.sentence || "");
  // older runs: persistence only; a run that ranks nothing (every series constant) is no good news
  $("verdict").className = head.outcome ? verdictClass(head.outcome) : `verdict ${head.beats_persistence ? "good" : "bad"}`;
  seriesVerdict();
  shown.clear();
  const best = view.series_verdict?.best || head.best;  // the shown series' winner, not the pooled one
  for (const name of [head.network, "persistence", best]) if (view.forecasters.includes(name)) shown.add(name);
  const steps = Object.keys(view.steps);
  $("step").replaceChildren(...steps.map((s) => el("option", { value: s, text: `${s} step${s === "1" ? "" : "s"} ahead` })));
  $("step-label").classList.toggle("hidden", steps.length < 2);
  toggles();
  drawChart();
  spans();
  scores();
  const titles = { series: "The series and its train / validation / test spans", error_by_step: "Error by horizon step",
    learning_curves: "Learning curves" };
  if (several) {  // the pipeline draws these of the first series and pooled over every series
    titles.series = `The first series, ${view.all_series[0]}, and its train / validation / test spans`;
    titles.error_by_step = "Error by horizon step (MASE, pooled over every series)";
  }
  $("plots").replaceChildren(...Object.entries(view.plots).filter(([p]) => titles[p]).map(([p, file]) => el("div", { class: "card" },
    el("h2", { text: titles[p] }),
    el("img", { class: "figure-img", alt: titles[p], src: `/api/run/file?${new URLSearchParams({ run, name: file })}` }))));
}

// Why a forecast run is not offered, and how to go on (`neuralab forecast --resume RUN` for an
// interrupted one): the sentence /api/forecast answers it with, or "" where it has a forecast after all.
async function wayOn(run) {
  try {
    await api(`/api/forecast?${new URLSearchParams({ run })}`);
    return "";
  } catch (e) {
    const why = e.message.replace(/^run [^:]*: /, "");
    return `${why.charAt(0).toUpperCase()}${why.slice(1)}.`;
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  const runs = await guarded(() => runPicker($("run"), "forecaster", $("no-runs"), false, wayOn));
  $("run").addEventListener("change", () => guarded(() => load($("run").value)));
  $("series").addEventListener("change", () => guarded(() => load($("run").value, $("series").value)));
  $("step").addEventListener("change", drawChart);
  if (runs && runs.length) guarded(() => load($("run").value));
});
