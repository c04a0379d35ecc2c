// Convolution playground: every change asks the server (neuralab.mechanics) for the output;
// the step view walks the windows of a small crop and writes out each dot product.
"use strict";

const DISPLAY = 392;  // the longer side of the input picture on screen, in CSS pixels
const state = { image: "sample:digit", op: "conv", kernel: "sobel-x", stride: 1, padding: "valid", size: 2, scale: "auto", at: null };
let kernels = {};
let limits = null;  // the server's ranges of the settings (GET /api/kernels), [lowest, highest] each
let result = null;
let step = 0;
let player = null;
let asked = 0;

const $ = (id) => document.getElementById(id);

// 0.1111 -> "1/9": kernels like box blur read as the slides write them
function frac(x) {
  for (let d = 1; d <= 64; d++) {
    const n = Math.round(x * d);
    if (Math.abs(x * d - n) < 1e-9) return d === 1 ? String(n) : `${n}/${d}`;
  }
  return num(x);
}

function kernelText(k) {
  return k.map((row) => row.map(frac).join(" ")).join("\n");
}

// what an input holds, as the API takes it: whole numbers as numbers, anything else as typed
// (the server's message then names what was typed)
function setting(value) {
  return /^\s*-?\d+\s*$/.test(value) ? Number(value) : value;
}

function fillGrid(table, rows, cellText) {
  table.replaceChildren(...rows.map((row, i) => el("tr", {}, ...row.map((v, j) => el("td", { text: cellText(v, i, j) })))));
}

async function update() {
  stopPlaying();
  const ticket = ++asked;
  const r = await guarded(() => api("/api/conv", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(state),
  }));
  if (ticket !== asked) return;  // only the answer to the latest settings is shown
  if (r) render(r);
  showStale(!r);
}

// Refused settings keep the last output on screen, dimmed and said to be the last valid one:
// beside controls that now read otherwise, it would pass for their result.
function showStale(stale) {
  document.querySelectorAll(".result").forEach((n) => n.classList.toggle("stale", stale));
  $("stale-note").classList.toggle("hidden", !(stale && result));
}

function render(r) {
  result = r;
  const scale = DISPLAY / Math.max(r.input.h, r.input.w);
  result.scale = scale;
  for (const [img, pic] of [[$("input-img"), r.input], [$("output-img"), r.output]]) {
    img.src = pic.url;
    img.width = Math.max(1, Math.round(pic.w * scale));
    img.height = Math.max(1, Math.round(pic.h * scale));
  }
  $("input-size").textContent = `${r.input.h} x ${r.input.w}`;
  $("output-range").textContent = `${r.output.h} x ${r.output.w} · values ${num(r.output.min)} to ${num(r.output.max)}, ${r.output.scale}`;
  $("output-size").textContent = r.size;
  $("formula").textContent = r.formula.join("\n");
  if (r.kernel) {
    fillGrid($("kernel-grid"), r.kernel, (v) => frac(v));
    $("kernel-caption").textContent = `Kernel ${r.kernel_name} (${r.kernel.length} x ${r.kernel[0].length})`;
  } else {
    const side = Number(state.size);
    fillGrid($("kernel-grid"), Array.from({ length: side }, () => Array(side).fill(r.op)), (v) => v);
    $("kernel-caption").textContent = `${r.kernel_name} ${side} x ${side}`;
  }
  step = 0;
  const has = Boolean(r.step);
  $("step-card").classList.toggle("hidden", !has);
  $("step-none").textContent = has ? "" : "The step view shows windows up to 7 x 7.";
  for (const id of ["crop-box", "window-box", "cell-box"]) $(id).classList.toggle("hidden", !has);
  if (has) {
    const s = r.step;
    place($("crop-box"), s.crop_origin[0], s.crop_origin[1], s.crop.length, s.crop[0].length, scale);
    fillGrid($("crop-grid"), s.crop, (v) => num(v));
    $("crop-grid").querySelectorAll("tr").forEach((tr, i) => tr.querySelectorAll("td").forEach((td, j) => {
      const v = s.crop[i][j];
      const g = Math.max(0, Math.min(255, Math.round(v)));
      td.style.background = `rgb(${g},${g},${g})`;
      td.style.color = g > 140 ? "#000" : "#fff";
      const row = s.crop_origin[0] + i, col = s.crop_origin[1] + j;
      if (row < 0 || col < 0 || row >= r.input.h || col >= r.input.w) td.classList.add("pad");
    }));
    if (r.kernel) fillGrid($("step-kernel"), r.kernel, (v) => frac(v));
    const rows = s.out.length, cols = s.out[0].length;
    $("step-where").textContent = `· input rows ${s.crop_origin[0]} to ${s.crop_origin[0] + s.crop.length - 1}, ` +
      `columns ${s.crop_origin[1]} to ${s.crop_origin[1] + s.crop[0].length - 1} (negative: padding)`;
    fillGrid($("out-grid"), Array.from({ length: rows }, () => Array(cols).fill("")), () => "");
    showStep(0);
  }
}

function place(box, row, col, h, w, scale) {
  box.style.top = `${row * scale - 2}px`;
  box.style.left = `${col * scale - 2}px`;
  box.style.height = `${h * scale + 4}px`;
  box.style.width = `${w * scale + 4}px`;
}

function showStep(t) {
  const s = result.step;
  const rows = s.out.length, cols = s.out[0].length, total = rows * cols;
  step = (t + total) % total;
  const a = Math.floor(step / cols), b = step % cols;
  const [kh, kw] = s.window;
  const r0 = a * s.stride, c0 = b * s.stride;
  $("crop-grid").querySelectorAll("tr").forEach((tr, i) => tr.querySelectorAll("td").forEach((td, j) => {
    td.classList.toggle("in-window", i >= r0 && i < r0 + kh && j >= c0 && j < c0 + kw);
  }));
  $("out-grid").querySelectorAll("tr").forEach((tr, i) => tr.querySelectorAll("td").forEach((td, j) => {
    const k = i * cols + j;
    td.textContent = k <= step ? num(s.out[i][j]) : "";
    td.classList.toggle("done", k < step);
    td.classList.toggle("now", k === step);
  }));
  const sc = result.scale;
  place($("window-box"), s.crop_origin[0] + r0, s.crop_origin[1] + c0, kh, kw, sc);
  place($("cell-box"), s.out_origin[0] + a, s.out_origin[1] + b, 1, 1, sc);
  $("step-count").textContent = `window ${step + 1} of ${total}`;
  const values = [];
  for (let u = 0; u < kh; u++) for (let v = 0; v < kw; v++) values.push([s.crop[r0 + u][c0 + v], u, v]);
  let text, value;
  if (s.op === "conv") {
    const k = result.kernel;
    const signed = (x) => (x < 0 ? `(${frac(x)})` : frac(x));
    text = values.map(([x, u, v]) => `${num(x)}×${signed(k[u][v])}`).join(" + ");
    value = values.reduce((acc, [x, u, v]) => acc + x * k[u][v], 0);
  } else if (s.op === "max") {
    text = `max(${values.map(([x]) => num(x)).join(", ")})`;
    value = Math.max(...values.map(([x]) => x));
  } else {
    text = `(${values.map(([x]) => num(x)).join(" + ")}) / ${values.length}`;
    value = values.reduce((acc, [x]) => acc + x, 0) / values.length;
  }
  value = Math.round(value * 1e9) / 1e9;
  $("step-equation").replaceChildren(text + " = ", el("b", { id: "step-sum", text: num(value) }));
}

function stopPlaying() {
  if (player) clearInterval(player);
  player = null;
  $("step-play").textContent = "Play";
}

function togglePlay() {
  if (player) return stopPlaying();
  player = setInterval(() => showStep(step + 1), 800);
  $("step-play").textContent = "Pause";
}

function showControls() {
  const conv = state.op === "conv";
  document.querySelectorAll(".for-conv").forEach((n) => n.classList.toggle("hidden", !conv));
  document.querySelectorAll(".for-pool").forEach((n) => n.classList.toggle("hidden", conv));
  // the inputs offer what the server takes: a pooling window steps as far as its largest size, a kernel less far
  const stride = limits[conv ? "stride" : "pool_stride"];
  [$("stride").min, $("stride").max] = stride;
  [$("size").min, $("size").max] = limits.size;
}

async function upload(file) {
  const r = await guarded(() => api("/api/upload", { method: "POST", body: file, headers: { "Content-Type": "application/octet-stream" } }));
  if (!r) return;
  const text = `your picture: ${file.name}`;
  // the same file picked again takes its old entry's place: one entry per name in the picker
  const option = [...$("picture").options].find((o) => o.text === text) || $("picture").appendChild(el("option", { text }));
  option.value = `upload:${r.token}`;
  $("picture").value = option.value;
  state.image = option.value;
  state.at = null;
  update();
}

document.addEventListener("DOMContentLoaded", async () => {
  const meta = await guarded(() => api("/api/kernels"));
  if (!meta) return;
  kernels = meta.kernels;
  limits = meta.limits;
  $("picture").replaceChildren(...Object.entries(meta.samples).map(([name, about]) =>
    el("option", { value: `sample:${name}`, text: `${name}: ${about}` })));
  $("kernel-name").replaceChildren(...Object.keys(kernels).map((n) => el("option", { value: n, text: n })),
    el("option", { value: "custom", text: "custom (typed)" }));
  $("kernel-name").value = state.kernel;
  $("kernel-text").value = kernelText(kernels[state.kernel]);

  $("picture").addEventListener("change", (e) => { state.image = e.target.value; state.at = null; update(); });
  $("upload-button").addEventListener("click", () => $("upload").click());
  $("upload").addEventListener("change", (e) => {
    const file = e.target.files[0];
    e.target.value = "";  // the browser fires no change for the same file picked again
    if (file) upload(file);
  });
  $("op").addEventListener("change", (e) => {
    // pooling windows step by their own size by default (Keras, PyTorch); convolutions by 1
    const pooling = e.target.value !== "conv";
    if (pooling !== (state.op !== "conv")) state.stride = $("stride").value = pooling ? state.size : 1;
    state.op = e.target.value;
    showControls();
    update();
  });
  $("size").addEventListener("change", (e) => {
    if (state.stride === state.size) state.stride = setting(e.target.value);
    $("stride").value = state.stride;
    state.size = setting(e.target.value);
    update();
  });
  $("kernel-name").addEventListener("change", (e) => {
    if (e.target.value === "custom") return;
    state.kernel = e.target.value;
    $("kernel-text").value = kernelText(kernels[state.kernel]);
    update();
  });
  $("kernel-text").addEventListener("input", debounce(() => {
    $("kernel-name").value = "custom";
    state.kernel = $("kernel-text").value;
    update();
  }, 400));
  for (const id of ["stride", "padding", "scale"]) {
    $(id).addEventListener("change", (e) => { state[id] = setting(e.target.value); update(); });
  }
  $("input-img").addEventListener("click", (e) => {
    // the picture's bottom and right edges (and a border) lie at offset h * scale, one past the last pixel
    const pixel = (offset, n) => Math.min(n - 1, Math.max(0, Math.floor(offset / result.scale)));
    state.at = [pixel(e.offsetY, result.input.h), pixel(e.offsetX, result.input.w)];
    update();
  });
  $("step-first").addEventListener("click", () => { stopPlaying(); showStep(0); });
  $("step-prev").addEventListener("click", () => { stopPlaying(); showStep(step - 1); });
  $("step-next").addEventListener("click", () => { stopPlaying(); showStep(step + 1); });
  $("step-last").addEventListener("click", () => { stopPlaying(); showStep(-1); });
  $("step-play").addEventListener("click", togglePlay);
  showControls();
  update();
});
