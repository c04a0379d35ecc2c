// Classifier: draw (light on dark, like MNIST) or upload; the server answers with the top
// classes and the feature maps of every convolution and pooling layer.
"use strict";

const $ = (id) => document.getElementById(id);
let last = null;       // the last picture sent: {blob, source}, resent when the run changes
let drawing = false;
let inked = false;
let asked = 0;         // requests sent; only the answer to the latest is shown
let listed = null;     // the run picker's loading: a picture dropped in before it ends waits for it
const LAYERS_HINT = "Draw or upload to see what every convolution and pooling layer makes of it.";

function pad() { return $("pad").getContext("2d"); }

function clearPad() {
  const ctx = pad();
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, $("pad").width, $("pad").height);
  inked = false;
}

function point(e) {
  const box = $("pad").getBoundingClientRect();
  return [(e.clientX - box.left) * ($("pad").width / box.width), (e.clientY - box.top) * ($("pad").height / box.height)];
}

function startStroke(e) {
  drawing = true;
  const ctx = pad();
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = 20;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(...point(e));
  ctx.lineTo(...point(e));
  ctx.stroke();
  inked = true;
  $("pad").setPointerCapture(e.pointerId);
}

function moveStroke(e) {
  if (!drawing) return;
  const ctx = pad();
  ctx.lineTo(...point(e));
  ctx.stroke();
}

function endStroke() {
  if (!drawing) return;
  drawing = false;
  if (inked) $("pad").toBlob((blob) => classify(blob, "canvas"), "image/png");
}

async function classify(blob, source) {
  last = { blob, source };
  await listed;
  const run = $("run").value;
  if (!run) return showError("Choose a trained run first (none is listed: train one with `neuralab train`).");
  const params = new URLSearchParams({ run, source, invert: $("invert").value });
  const ticket = ++asked;
  const r = await guarded(() => api(`/api/classify?${params}`, {
    method: "POST", body: blob, headers: { "Content-Type": "application/octet-stream" },
  }));
  if (ticket !== asked) return;  // a slower answer to an older stroke must not win
  if (r) render(r);
  else forget();  // refused: the last picture's answer under the error would read as this one's
}

function forget() {
  $("timing").textContent = "";
  $("bars").replaceChildren();
  delete $("bars").dataset.top;
  $("seen").removeAttribute("src");
  $("blank").classList.add("hidden");
  $("layers").replaceChildren(el("p", { class: "muted", text: LAYERS_HINT }));
}

function render(r) {
  $("timing").textContent = `· ${r.model}, answered in ${Math.round(r.ms)} ms`;
  $("bars").replaceChildren(...r.top.flatMap((t, i) => {
    const bar = el("div");
    bar.style.width = `${(t.probability * 100).toFixed(1)}%`;
    const row = [el("div", { class: "label", text: t.class }), el("div", { class: "bar" }, bar),
                 el("div", { class: "pct", text: `${(t.probability * 100).toFixed(1)}%` })];
    if (i === 0) row.forEach((n) => n.classList.add("first"));
    return row;
  }));
  $("bars").dataset.top = r.top[0].class;
  $("seen").src = r.input;
  $("blank").textContent = r.blank || "";
  $("blank").classList.toggle("hidden", !r.blank);
  if (!r.layers.length) {
    $("layers").replaceChildren(el("p", { class: "muted", text: `${r.model} has no convolution or pooling layer.` }));
    return;
  }
  $("layers").replaceChildren(...r.layers.map((layer, i) => {
    const [c, h, w] = layer.shape;
    const more = c > layer.maps.length && !layer.vector ? `, first ${layer.maps.length} of ${c} maps` : "";
    const about = layer.vector ? `· ${c} maps of 1 x 1: one number per filter, ${Math.min(c, 12)} to a row`
      : `· ${c} maps of ${h} x ${w}${more}`;
    const box = el("details", { class: "layer" },
      el("summary", {}, `${layer.name} · ${layer.kind} `, el("span", { class: "muted", text: about })),
      el("div", { class: layer.vector ? "maps vector" : "maps" }, ...layer.maps.map((url, j) =>
        el("img", { class: "pixels", src: url, alt: `${layer.name} map ${j}`, title: `map ${j}` }))));
    if (i < 6) box.open = true;
    return box;
  }));
}

// How a run stopped before its first epoch gets a model: it is not offered, having none yet.
function wayOn(run, listed) {
  if (listed.status !== "interrupted" || listed.epochs > 0) return "";
  return `Resume it on its run page (Runs), or with \`neuralab train --resume\` in a terminal: it trains from its `
    + "first epoch, and is offered here once that epoch ends.";
}

document.addEventListener("DOMContentLoaded", () => {
  listed = guarded(() => runPicker($("run"), "image-classifier", $("no-runs"), true, wayOn));
  clearPad();
  $("pad").addEventListener("pointerdown", startStroke);
  $("pad").addEventListener("pointermove", moveStroke);
  $("pad").addEventListener("pointerup", endStroke);
  $("pad").addEventListener("pointercancel", endStroke);
  $("clear").addEventListener("click", clearPad);
  $("upload-button").addEventListener("click", () => $("upload").click());
  $("upload").addEventListener("change", (e) => {
    const file = e.target.files[0];
    e.target.value = "";  // the browser fires no change for the same file picked again: the learner's retry after a drawing
    if (file) classify(file, "upload");
  });
  const resend = () => { if (last) classify(last.blob, last.source); };
  $("run").addEventListener("change", resend);
  // the canvas is drawn light on dark, MNIST's way: the server inverts uploads only
  $("invert").addEventListener("change", () => { if (last && last.source === "upload") resend(); });
});
