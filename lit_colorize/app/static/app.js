// lit-colorize's page: one photo, its gray input, the result, hints placed by clicking.
// Coordinates are always the photo's own pixels (0 at the top-left pixel's centre), as the
// command line's hint files give them; the server maps them to its preview and working sizes.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  model: null,        // GET /api/model
  photo: null,        // the upload's {id, width, height, ...}
  name: "photo",      // the chosen file's name without extension, for the downloads' names
  hints: [],          // [{x, y, color, size?}]
  editing: null,      // index of the hint the picker edits, or null
  renderSeq: 0,       // later requests win over slower earlier ones
  resultUrl: null,
  pickPoint: null,    // the pixel the open picker is for, marked on the photo
  downloading: null,  // the AbortController of a full-size download in progress
  ownDecoding: true,  // the model's own recommended decoding (temperature null) until the slider is moved
  global: null,       // the global hint: {kind: "reference", id, name, url, swatches} or {kind: "palette", chips: [{color, weight}]}
};
// The colors "Add a palette color" starts from, in turn.
const CHIP_COLORS = ["#2a6fdb", "#c8a27a", "#3c9a3c", "#d03030", "#e0c040", "#7a4fc8"];

// null asks the server for the model's own decoding (GET /api/model's "decoding").
function temperature() { return state.ownDecoding ? null : Number($("temperature").value); }

function decodingLabel() {
  if (!state.ownDecoding) return `T=${temperature().toFixed(2)}`;
  const own = state.model && state.model.decoding;
  return own ? `the model's own ${own.name.replace("_", " ")} at T=${own.temperature}` : "the model's own decoding";
}

function fileTemperature() {
  const own = state.model && state.model.decoding;
  return state.ownDecoding ? (own ? own.temperature : "model") : temperature();
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

function postJson(path, body) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

function hintsForServer() {
  return state.hints.map(({ x, y, color, size }) => (size ? { x, y, color, size } : { x, y, color }));
}

// The global hint as the server takes it: an uploaded reference's id, or the palette and its weights.
function globalForServer() {
  const hint = state.global;
  if (!hint) return {};
  if (hint.kind === "reference") return { reference: hint.id };
  return { palette: hint.chips.map((chip) => chip.color), weights: hint.chips.map((chip) => chip.weight) };
}

function requestBody() {
  return { temperature: temperature(), hints: hintsForServer(), ...globalForServer() };
}

// ---- loading a photo --------------------------------------------------------------------
async function loadPhoto(file) {
  showError("");
  if (!file) return;
  if (state.model && file.size > state.model.max_upload_bytes) {
    showError(`${file.name} is ${(file.size / 2 ** 20).toFixed(1)} MiB, over this server's ` +
              `${(state.model.max_upload_bytes / 2 ** 20).toFixed(0)} MiB limit; choose a smaller photo`);
    return;
  }
  $("status").textContent = `Reading ${file.name}…`;
  try {
    // Sent as octet-stream whatever the file's own type: the server reads the bytes for what they are.
    const response = await api("/api/photos", { method: "POST", headers: { "Content-Type": "application/octet-stream" }, body: file });
    const photo = await response.json();
    state.photo = photo;
    state.name = file.name.replace(/\.[^.]*$/, "") || "photo";
    state.hints = [];
    closePicker();
    $("gray").src = `/api/photos/${photo.id}/gray.png`;
    $("before").src = $("gray").src;
    $("input-note").textContent = `${photo.width}×${photo.height}` + (photo.had_color ? ", color taken to gray" : "");
    $("panels").hidden = false;
    $("hints").hidden = false;
    for (const control of document.querySelectorAll("#toolbar [disabled]")) control.disabled = false;
    renderHints();
    await colorize();
  } catch (error) {
    showError(`${file.name}: ${error.message}`);
    $("status").textContent = state.photo ? "The previous photo is still loaded." : "Choose or drop a photo.";
  }
}

// ---- the result -------------------------------------------------------------------------
// Resolves to "shown", "refused" (the server said why; the result keeps the previous settings)
// or "superseded" (a later change is on its way).
async function colorize() {
  if (!state.photo) return "superseded";
  const seq = ++state.renderSeq;
  const started = performance.now();
  try {
    const response = await postJson(`/api/photos/${state.photo.id}/colorize`, requestBody());
    const blob = await response.blob();
    if (seq !== state.renderSeq) return "superseded";
    const url = URL.createObjectURL(blob);
    await new Promise((resolve, reject) => {
      $("result").onload = resolve;
      $("result").onerror = () => reject(new Error("the result could not be shown"));
      $("result").src = url;
    });
    if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
    state.resultUrl = url;
    const serverMs = response.headers.get("X-Colorize-Ms");
    const total = Math.round(performance.now() - started);
    const hintsNote = state.hints.length ? `, ${state.hints.length} hint${state.hints.length > 1 ? "s" : ""}` : "";
    const globalNote = !state.global ? "" : state.global.kind === "reference" ? `, the colors of ${state.global.name}`
      : `, a palette of ${state.global.chips.length}`;
    $("status").textContent = `Colorized with ${decodingLabel()}${hintsNote}${globalNote} in ${serverMs} ms on the server ` +
      `(${total} ms with the round trip); shown at ${state.photo.preview_width}×${state.photo.preview_height}, ` +
      `downloads at ${state.photo.width}×${state.photo.height}.`;
    $("result").dataset.version = String(seq);
    showError("");
    return "shown";
  } catch (error) {
    if (seq !== state.renderSeq) return "superseded";
    showError(error.message);
    $("status").textContent = "Not colorized: the server refused the last change (below); the result still shows the settings before it.";
    return "refused";
  }
}

// Applies a change to the hints and colorizes; the hints go back to what they were if the server refuses them.
async function changeHints(change) {
  const before = state.hints.map((hint) => ({ ...hint }));
  change();
  renderHints();
  if (await colorize() === "refused") {
    state.hints = before;
    renderHints();
  }
}

let colorizeTimer = null;
function colorizeSoon() {
  clearTimeout(colorizeTimer);
  colorizeTimer = setTimeout(colorize, 60);
}

function showDecoding() {
  $("temperature-value").textContent = state.ownDecoding ? "model's own" : temperature().toFixed(2);
  for (const preset of document.querySelectorAll("[data-temperature]")) {
    const own = preset.dataset.temperature === "model";
    preset.setAttribute("aria-pressed", String(own ? state.ownDecoding : !state.ownDecoding && Number(preset.dataset.temperature) === temperature()));
  }
}
$("temperature").addEventListener("input", () => {
  state.ownDecoding = false;
  showDecoding();
  colorizeSoon();
});
for (const preset of document.querySelectorAll("[data-temperature]")) {
  preset.addEventListener("click", () => {
    if (preset.dataset.temperature === "model") {
      state.ownDecoding = true;
      showDecoding();
      colorizeSoon();
      return;
    }
    $("temperature").value = preset.dataset.temperature;
    $("temperature").dispatchEvent(new Event("input"));
  });
}
$("compare").addEventListener("input", () => {
  $("before").style.clipPath = `inset(0 ${100 - Number($("compare").value)}% 0 0)`;
});

async function download() {
  if (!state.photo || state.downloading) return;
  const controller = new AbortController();
  state.downloading = controller;
  $("download").disabled = true;
  $("download-busy").hidden = false;  // an indeterminate bar: the server's strips are not reported
  showError("");
  $("status").textContent = `Colorizing ${state.photo.width}×${state.photo.height} at full size…`;
  try {
    const response = await api(`/api/photos/${state.photo.id}/download`, {
      method: "POST", headers: { "Content-Type": "application/json" }, signal: controller.signal,
      body: JSON.stringify(requestBody()),
    });
    saveBlob(await response.blob(), `${state.name}_colorized_T${fileTemperature()}.png`);
    $("status").textContent = `Downloaded ${state.photo.width}×${state.photo.height}.`;
  } catch (error) {
    if (controller.signal.aborted) {
      $("status").textContent = "Download cancelled; the server stopped working on it.";
    } else {
      showError(error.message);
      $("status").textContent = "The full-size download failed (below).";
    }
  } finally {
    state.downloading = null;
    $("download-busy").hidden = true;
    $("download").disabled = false;
  }
}
$("download-cancel").addEventListener("click", () => { if (state.downloading) state.downloading.abort(); });
$("download").addEventListener("click", download);

function saveBlob(blob, name) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

// ---- hints ------------------------------------------------------------------------------
function photoPoint(event) {
  const box = $("result").getBoundingClientRect();
  const u = Math.min(Math.max((event.clientX - box.left) / box.width, 0), 0.9999);
  const v = Math.min(Math.max((event.clientY - box.top) / box.height, 0), 0.9999);
  return { x: Math.floor(u * state.photo.width), y: Math.floor(v * state.photo.height) };
}

function renderHints() {
  const dots = $("hint-dots");
  dots.replaceChildren();
  state.hints.forEach((hint, index) => {
    const dot = document.createElement("div");
    dot.className = "dot";
    dot.dataset.index = String(index);
    dot.title = `hint ${index + 1}: ${hint.color} at (${hint.x}, ${hint.y})`;
    dot.style.left = `${((hint.x + 0.5) / state.photo.width) * 100}%`;
    dot.style.top = `${((hint.y + 0.5) / state.photo.height) * 100}%`;
    dot.style.background = hint.color;
    if (index === state.editing) dot.classList.add("pending");
    dot.addEventListener("pointerdown", (event) => startDrag(event, index));
    dots.appendChild(dot);
  });
  if (!$("picker").hidden && state.editing === null && state.pickPoint) {  // where the new hint would go
    const marker = document.createElement("div");
    marker.className = "marker";
    marker.style.left = `${((state.pickPoint.x + 0.5) / state.photo.width) * 100}%`;
    marker.style.top = `${((state.pickPoint.y + 0.5) / state.photo.height) * 100}%`;
    dots.appendChild(marker);
  }
  const list = $("hints-list");
  list.replaceChildren();
  state.hints.forEach((hint, index) => {
    const item = document.createElement("li");
    const color = document.createElement("input");
    color.type = "color";
    color.value = hint.color;
    color.setAttribute("aria-label", `hint ${index + 1}'s color`);
    color.addEventListener("change", () => changeHints(() => { hint.color = color.value; }));
    const where = document.createElement("span");
    where.textContent = `x ${hint.x}, y ${hint.y}` + (hint.size ? `, side ${hint.size} px` : "");
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "Remove";
    remove.addEventListener("click", () => removeHint(index));
    item.append(color, where, remove);
    list.appendChild(item);
  });
  $("hint-count").textContent = state.hints.length ? `(${state.hints.length})` : "";
  const supported = state.model && state.model.hints;
  $("hint-help").textContent = supported ? "click to add a hint, drag a dot to move it"
    : "click to see the model's likely colors (this model takes no hints)";
}

function removeHint(index) {
  closePicker();
  changeHints(() => state.hints.splice(index, 1));
}

// The picker beside the click, flipped and clamped so that all of it is in the visible window
// (the page's scrollWidth would count the picker itself, wherever it was last shown).
function placePicker(picker, event) {
  const margin = 8;
  const view = { left: window.scrollX, top: window.scrollY,
                 right: window.scrollX + document.documentElement.clientWidth,
                 bottom: window.scrollY + document.documentElement.clientHeight };
  const width = picker.offsetWidth, height = picker.offsetHeight;
  let left = event.pageX + 12, top = event.pageY + 12;
  if (left + width > view.right - margin) left = event.pageX - 12 - width;
  if (top + height > view.bottom - margin) top = event.pageY - 12 - height;
  left = Math.max(view.left + margin, Math.min(left, view.right - margin - width));
  top = Math.max(view.top + margin, Math.min(top, view.bottom - margin - height));
  picker.style.left = `${left}px`;
  picker.style.top = `${top}px`;
}

// Whether a label on this color should be dark: its CIE L* over 60 (pale colors).
function isLight(hex) {
  const linear = [1, 3, 5].map((i) => {
    const c = parseInt(hex.slice(i, i + 2), 16) / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  const luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2];
  const lightness = luminance > 216 / 24389 ? 116 * Math.cbrt(luminance) - 16 : luminance * 24389 / 27;
  return lightness > 60;
}

async function openPicker(point, index, event) {
  state.editing = index;
  state.pickPoint = point;
  const picker = $("picker");
  picker.style.left = "0px";  // measured where it cannot widen the page
  picker.style.top = "0px";
  picker.hidden = false;
  renderHints();  // with the marker at the clicked pixel
  placePicker(picker, event);
  $("picker-title").textContent = `Pixel (${point.x}, ${point.y}): the model's likely colors`;
  $("picker-remove").hidden = index === null;
  const current = index === null ? null : state.hints[index];
  $("picker-color").value = current ? current.color : "#808080";
  $("picker-size").value = current && current.size ? current.size : "";
  const palette = $("palette");
  palette.replaceChildren();
  palette.dataset.state = "loading";
  if (!state.model.suggestions) { palette.dataset.state = "none"; return; }
  const others = hintsForServer().filter((_, i) => i !== index);
  try {
    const response = await postJson(`/api/photos/${state.photo.id}/suggest`,
                                    { ...requestBody(), x: point.x, y: point.y, k: 6, hints: others });
    for (const suggestion of await response.json()) {
      const swatch = document.createElement("button");
      swatch.type = "button";
      swatch.className = "swatch";
      swatch.style.background = suggestion.color;
      swatch.classList.toggle("light", isLight(suggestion.color));
      swatch.dataset.color = suggestion.color;
      swatch.textContent = `${Math.round(suggestion.probability * 100)}%`;
      swatch.title = `${suggestion.color}, probability ${(suggestion.probability * 100).toFixed(1)}%`;
      swatch.addEventListener("click", () => chooseColor(suggestion.color));
      palette.appendChild(swatch);
    }
    palette.dataset.state = "ready";
    placePicker(picker, event);  // taller now, with its swatches
    showError("");
  } catch (error) {
    palette.dataset.state = "failed";
    showError(error.message);
  }
}

function closePicker() {
  $("picker").hidden = true;
  state.editing = null;
  state.pickPoint = null;
  if (state.photo) renderHints();
}

function chooseColor(color) {
  if (!state.model.hints) {
    showError("this model was trained without hints; start the server with a hint model (--ckpt_path) to set colors");
    return;
  }
  const size = Number($("picker-size").value) || undefined;
  const editing = state.editing, point = state.pickPoint;
  closePicker();
  changeHints(() => {
    if (editing === null) state.hints.push({ ...point, color, ...(size ? { size } : {}) });
    else Object.assign(state.hints[editing], { color, size });
  });
}

$("picker-apply").addEventListener("click", () => chooseColor($("picker-color").value));
$("picker-remove").addEventListener("click", () => removeHint(state.editing));
$("picker-close").addEventListener("click", closePicker);

$("stage").addEventListener("click", (event) => {
  if (!state.photo || event.target.classList.contains("dot") || state.justDragged) return;
  openPicker(photoPoint(event), null, event);
});

function startDrag(event, index) {
  event.preventDefault();
  event.stopPropagation();
  const dot = event.target;
  const start = { x: event.clientX, y: event.clientY };
  let moved = false;
  const before = { x: state.hints[index].x, y: state.hints[index].y };
  dot.setPointerCapture(event.pointerId);
  const onMove = (move) => {
    if (!moved && Math.hypot(move.clientX - start.x, move.clientY - start.y) < 4) return;
    moved = true;
    Object.assign(state.hints[index], photoPoint(move));
    const box = $("result").getBoundingClientRect();
    dot.style.left = `${((move.clientX - box.left) / box.width) * 100}%`;
    dot.style.top = `${((move.clientY - box.top) / box.height) * 100}%`;
  };
  const onUp = (up) => {
    dot.removeEventListener("pointermove", onMove);
    dot.removeEventListener("pointerup", onUp);
    if (moved) {
      state.justDragged = true;
      setTimeout(() => { state.justDragged = false; }, 0);
      const after = { x: state.hints[index].x, y: state.hints[index].y };
      Object.assign(state.hints[index], before);
      changeHints(() => Object.assign(state.hints[index], after));
    } else {
      openPicker({ x: state.hints[index].x, y: state.hints[index].y }, index, up);
    }
  };
  dot.addEventListener("pointermove", onMove);
  dot.addEventListener("pointerup", onUp);
}

$("save-hints").addEventListener("click", () => {
  const text = JSON.stringify(hintsForServer(), null, 2) + "\n";
  saveBlob(new Blob([text], { type: "application/json" }), `${state.name}.hints.json`);
});

$("load-hints").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  event.target.value = "";
  if (!file) return;
  try {
    const loaded = JSON.parse(await file.text());
    if (!Array.isArray(loaded)) throw new Error("a hints file is a JSON list of {x, y, color[, size]}");
    closePicker();
    await changeHints(() => { state.hints = loaded.map((hint) => ({ ...hint })); });  // kept only if the server takes them
  } catch (error) {
    showError(`${file.name}: ${error.message}`);
  }
});

$("clear-hints").addEventListener("click", () => { closePicker(); changeHints(() => { state.hints = []; }); });

// ---- the global hint: a reference photo or a palette -------------------------------------
// Applies a change to the global hint and colorizes; it goes back to what it was if the server refuses it.
async function changeGlobal(change) {
  const before = state.global && { ...state.global, chips: state.global.chips && state.global.chips.map((chip) => ({ ...chip })) };
  change();
  renderGlobal();
  if (await colorize() === "refused") {
    state.global = before;
    renderGlobal();
  }
}

async function loadReference(file) {
  showError("");
  if (!file) return;
  if (file.size > state.model.max_upload_bytes) {
    showError(`${file.name} is ${(file.size / 2 ** 20).toFixed(1)} MiB, over this server's ` +
              `${(state.model.max_upload_bytes / 2 ** 20).toFixed(0)} MiB limit; choose a smaller reference`);
    return;
  }
  $("status").textContent = `Reading the reference ${file.name}…`;
  try {
    const response = await api("/api/references", { method: "POST", headers: { "Content-Type": "application/octet-stream" }, body: file });
    const reference = await response.json();
    await changeGlobal(() => {
      state.global = { kind: "reference", name: file.name, url: URL.createObjectURL(file), ...reference };
    });
  } catch (error) {
    showError(`${file.name}: ${error.message}`);
    $("status").textContent = "The reference was not taken; the global hint is as it was.";
  }
}

function swatch(color, share) {
  const item = document.createElement("div");
  item.className = "swatch";
  item.style.background = color;
  item.classList.toggle("light", isLight(color));
  item.dataset.color = color;
  item.textContent = `${Math.round(share * 100)}%`;
  item.title = `${color}, ${(share * 100).toFixed(1)}%`;
  return item;
}

function renderGlobal() {
  const hint = state.global;
  const reference = hint && hint.kind === "reference" ? hint : null;
  const chips = hint && hint.kind === "palette" ? hint.chips : [];
  $("reference-thumb").hidden = !reference;
  if (reference && $("reference-thumb").src !== reference.url) $("reference-thumb").src = reference.url;
  $("reference-name").textContent = reference ? `${reference.name}, ${reference.width}×${reference.height}` : "";
  const list = $("chips");
  list.replaceChildren();
  chips.forEach((chip, index) => {
    const item = document.createElement("li");
    const color = document.createElement("input");
    color.type = "color";
    color.value = chip.color;
    color.setAttribute("aria-label", `palette color ${index + 1}`);
    color.addEventListener("change", () => changeGlobal(() => { state.global.chips[index].color = color.value; }));
    const weight = document.createElement("input");
    weight.type = "number";
    weight.min = "0";
    weight.step = "any";
    weight.value = String(chip.weight);
    weight.setAttribute("aria-label", `palette color ${index + 1}'s weight`);
    weight.addEventListener("change", () => changeGlobal(() => { state.global.chips[index].weight = Number(weight.value); }));
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "Remove";
    remove.addEventListener("click", () => changeGlobal(() => {
      state.global.chips.splice(index, 1);
      if (!state.global.chips.length) state.global = null;
    }));
    item.append(color, "weight", weight, remove);
    list.appendChild(item);
  });
  $("clear-global").disabled = !hint;
  // what the model is given, beside the result: the reference's most likely colors, or the palette's shares
  const total = chips.reduce((sum, chip) => sum + Math.max(chip.weight, 0), 0) || 1;
  const shown = reference ? reference.swatches : chips.map((chip) => ({ color: chip.color, share: Math.max(chip.weight, 0) / total }));
  $("global-swatches").replaceChildren(...shown.map(({ color, share }) => swatch(color, share)));
  $("global-palette-label").textContent = reference ? "Reference's colors" : "Palette";
  $("global-palette").hidden = !hint;
}

$("reference-file").addEventListener("change", (event) => {
  loadReference(event.target.files[0]);
  event.target.value = "";
});
$("add-chip").addEventListener("click", () => changeGlobal(() => {
  const chips = state.global && state.global.kind === "palette" ? state.global.chips : [];  // a palette replaces a reference
  chips.push({ color: CHIP_COLORS[chips.length % CHIP_COLORS.length], weight: 1 });
  state.global = { kind: "palette", chips };
}));
$("clear-global").addEventListener("click", () => changeGlobal(() => { state.global = null; }));
// A file dropped on the global hint's box is a reference, not a new photo.
$("global").addEventListener("dragover", (event) => { event.preventDefault(); event.stopPropagation(); $("global").classList.add("dragging"); });
$("global").addEventListener("dragleave", () => $("global").classList.remove("dragging"));
$("global").addEventListener("drop", (event) => {
  event.preventDefault();
  event.stopPropagation();
  $("global").classList.remove("dragging");
  loadReference(event.dataTransfer.files[0]);
});

// ---- choosing and dropping files --------------------------------------------------------
$("file").addEventListener("change", (event) => {
  loadPhoto(event.target.files[0]);
  event.target.value = "";
});
document.addEventListener("dragover", (event) => { event.preventDefault(); document.body.classList.add("dragging"); });
document.addEventListener("dragleave", () => document.body.classList.remove("dragging"));
document.addEventListener("drop", (event) => {
  event.preventDefault();
  document.body.classList.remove("dragging");
  loadPhoto(event.dataTransfer.files[0]);
});
document.addEventListener("keydown", (event) => { if (event.key === "Escape") closePicker(); });

(async () => {
  try {
    state.model = await (await api("/api/model")).json();
    const takes = [state.model.hints && "color hints", state.model.global_hints && "a reference or palette"].filter(Boolean);
    $("model-name").textContent = `model: ${state.model.name}` + (takes.length ? ` (takes ${takes.join(" and ")})` : "");
    $("global").hidden = !state.model.global_hints;  // a model without global hints: no control for them
    document.body.dataset.ready = "true";
  } catch (error) {
    showError(`the server did not answer: ${error.message}`);
  }
})();
