// The Performance RNN page: a live stream over /api/live played by a small WebAudio synth (or a Web MIDI
// output), drawn on a scrolling piano roll; a text panel; a strokes panel. No dependencies.
"use strict";

const $ = (id) => document.getElementById(id);
const BUFFER_S = 0.15;       // play each note this long after its due time, to absorb network jitter
const ROLL_SECONDS = 8;      // seconds of history across the piano roll
const LOW = 21, HIGH = 108;  // piano range drawn
const KEYS = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"];

// ---------- a tiny polyphonic synth ----------
class Synth {
  constructor() { this.ctx = null; this.voices = new Map(); }
  ensure() {
    if (!this.ctx && !this.failed) {
      try {
        const AC = window.AudioContext || window.webkitAudioContext;
        this.ctx = new AC();
        this.master = this.ctx.createGain();
        this.master.gain.value = 0.25;
        this.master.connect(this.ctx.destination);
      } catch (e) { this.failed = true; this.ctx = null; }  // no audio here: the roll and MIDI still work
    }
    if (this.ctx && this.ctx.state === "suspended") this.ctx.resume();
    return this.ctx;
  }
  audioTime(perfS) { // a performance.now() time (s) -> AudioContext time
    return this.ctx.currentTime + Math.max(0, perfS - performance.now() / 1000);
  }
  noteOn(pitch, velocity, perfS) {
    if (!this.ensure()) return;
    this.noteOff(pitch, perfS);
    const t = this.audioTime(perfS);
    const osc = this.ctx.createOscillator(), gain = this.ctx.createGain();
    osc.type = "triangle";
    osc.frequency.value = 440 * Math.pow(2, (pitch - 69) / 12);
    gain.gain.setValueAtTime(0, t);
    gain.gain.linearRampToValueAtTime(0.15 + 0.6 * velocity / 127, t + 0.005);
    gain.gain.setTargetAtTime(0.05, t + 0.01, 0.8);  // a piano-ish decay while held
    osc.connect(gain).connect(this.master);
    osc.start(t);
    this.voices.set(pitch, { osc, gain });
  }
  noteOff(pitch, perfS) {
    const v = this.voices.get(pitch);
    if (!v || !this.ctx) return;
    const t = this.audioTime(perfS);
    v.gain.gain.cancelScheduledValues(t);
    v.gain.gain.setTargetAtTime(0, t, 0.06);
    v.osc.stop(t + 0.5);
    this.voices.delete(pitch);
  }
  allOff() { for (const p of [...this.voices.keys()]) this.noteOff(p, 0); }
}

// ---------- Web MIDI output, where the browser offers it ----------
const midi = { access: null, out: null, sounding: new Set() };
async function setupMidi() {
  if (!navigator.requestMIDIAccess) return;
  try { midi.access = await navigator.requestMIDIAccess(); } catch (e) { return; }
  const sel = $("midi-out");
  const refresh = () => {
    sel.length = 1;
    for (const o of midi.access.outputs.values()) sel.add(new Option(o.name, o.id));
    $("midi-out-label").hidden = sel.length < 2;
  };
  refresh();
  midi.access.onstatechange = refresh;
  sel.onchange = () => { midiAllOff(); midi.out = sel.value ? midi.access.outputs.get(sel.value) : null; };
}
function midiSend(bytes, perfS) {
  if (midi.out) midi.out.send(bytes, Math.max(performance.now(), perfS * 1000));
}
function midiAllOff() {
  if (!midi.out) return;
  for (const p of midi.sounding) midi.out.send([0x80, p, 0]);
  midi.out.send([0xB0, 123, 0]);
  midi.sounding.clear();
}

// ---------- the live stream ----------
const synth = new Synth();
const live = { ws: null, origin: 0, paused: false, rollNotes: [], open: new Map(), played: [], lastT: 0,
               shown: 0 };

function startLive() {
  synth.ensure();
  stopLive(true);
  Object.assign(live, { rollNotes: [], open: new Map(), played: [], lastT: 0, paused: false, shown: 0 });
  $("note-count").textContent = "0";
  $("piano-roll").dataset.notes = "0";
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/live`);
  live.ws = ws;
  const model = $("model").value || undefined;  // unset: the server's default music model
  ws.onopen = () => ws.send(JSON.stringify({ type: "start", model, seed: Number($("seed").value) || 0,
                                             ...controls() }));
  ws.onmessage = (e) => onMessage(JSON.parse(e.data));
  ws.onclose = () => { if (live.ws === ws) finish("disconnected"); };
  setStatus("connecting…");
  setButtons(true);
}

function controls() {
  const density = Number($("density").value);
  return { temperature: Number($("temperature").value), density: density > 0 ? density : null,
           key: $("key").value || null };
}

function onMessage(msg) {
  const now = performance.now() / 1000;
  if (msg.type === "started") {
    live.origin = now + BUFFER_S;
    const on = msg.model ? ` ${msg.model}` : "";
    setStatus(msg.conditioned ? `playing${on}` : `playing${on} (this model takes no density/key)`);
  } else if (msg.type === "note") {
    const due = live.origin + msg.at;
    live.lastT = Math.max(live.lastT, msg.t);
    if (msg.on) {
      synth.noteOn(msg.pitch, msg.velocity, due);
      midiSend([0x90, msg.pitch, msg.velocity], due);
      midi.sounding.add(msg.pitch);
      const note = { pitch: msg.pitch, velocity: msg.velocity, on: due, off: null, t: msg.t };
      live.rollNotes.push(note);
      live.open.set(msg.pitch, note);
    } else {
      synth.noteOff(msg.pitch, due);
      midiSend([0x80, msg.pitch, 0], due);
      midi.sounding.delete(msg.pitch);
      closeNote(msg.pitch, due, msg.t);
    }
  } else if (msg.type === "paused") {
    live.paused = true;
    synth.allOff(); midiAllOff();
    setStatus("paused");
  } else if (msg.type === "resumed") {
    live.paused = false;
    setStatus("playing");
  } else if (msg.type === "end") {
    finish(msg.reason);
  } else if (msg.type === "error") {
    setStatus(`error ${msg.status}: ${msg.detail}`, true);
  }
}

function closeNote(pitch, due, t) {
  const note = live.open.get(pitch);
  if (!note) return;
  note.off = due;
  live.open.delete(pitch);
  live.played.push({ pitch, velocity: note.velocity, start_s: note.t, end_s: Math.max(t, note.t) });
}

function send(msg) { if (live.ws && live.ws.readyState === WebSocket.OPEN) live.ws.send(JSON.stringify(msg)); }

function stopLive(quiet) {
  if (live.ws) {
    send({ type: "stop" });
    if (quiet) { const ws = live.ws; live.ws = null; setTimeout(() => ws.close(), 200); }
  }
  synth.allOff(); midiAllOff();
}

function finish(reason) {
  const now = performance.now() / 1000;
  for (const pitch of [...live.open.keys()]) closeNote(pitch, now, live.lastT);
  synth.allOff(); midiAllOff();
  if (live.ws) { const ws = live.ws; live.ws = null; ws.close(); }
  setStatus(`stopped (${reason})`);
  setButtons(false);
}

function setButtons(running) {
  $("start").disabled = running;
  $("pause").disabled = !running;
  $("stop").disabled = !running;
  $("pause").textContent = "Pause";
  $("model").disabled = running;  // a stream keeps the model it started with
  $("download").disabled = running ? false : live.played.length === 0;
}

function setStatus(text, isError) {
  $("live-status").textContent = text;
  $("live-status").className = isError ? "error" : "muted";
}

async function download() {
  const notes = live.played.slice(-50000);
  const r = await fetch("/api/music/midi", { method: "POST", headers: { "content-type": "application/json" },
                                             body: JSON.stringify({ notes }) });
  if (!r.ok) { setStatus(`download failed: ${r.status}`, true); return; }
  const a = document.createElement("a");
  a.href = URL.createObjectURL(await r.blob());
  a.download = "performance.mid";
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

// ---------- the piano roll ----------
function drawRoll() {
  const canvas = $("piano-roll"), g = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, now = performance.now() / 1000;
  const playX = W * 0.85, pps = playX / ROLL_SECONDS, rowH = H / (HIGH - LOW + 1);
  g.fillStyle = "#0b0e11"; g.fillRect(0, 0, W, H);
  g.fillStyle = "#151b21";
  for (let p = LOW; p <= HIGH; p++) if ([1, 3, 6, 8, 10].includes(p % 12)) g.fillRect(0, H - (p - LOW + 1) * rowH, W, rowH);
  live.rollNotes = live.rollNotes.filter((n) => n.off === null || n.off > now - ROLL_SECONDS - 1);
  let shown = live.shown;
  for (const n of live.rollNotes) {
    if (n.on > now + 1) continue;
    const x0 = playX - (now - n.on) * pps, x1 = playX - (now - (n.off ?? now)) * pps;
    const y = H - (n.pitch - LOW + 1) * rowH;
    g.fillStyle = `hsl(${200 + (n.pitch % 12) * 10}, 80%, ${35 + 40 * n.velocity / 127}%)`;
    g.fillRect(x0, y, Math.max(2, Math.min(x1, playX) - x0), Math.max(2, rowH));
    if (!n.drawn && n.on <= now) { n.drawn = true; shown += 1; }
  }
  g.fillStyle = "#4fb3ff"; g.fillRect(playX, 0, 2, H);
  if (shown !== live.shown) {
    live.shown = shown;
    canvas.dataset.notes = String(shown);
    $("note-count").textContent = String(shown);
  }
  requestAnimationFrame(drawRoll);
}

// ---------- text and strokes ----------
async function postJson(path, body) {
  const r = await fetch(path, { method: "POST", headers: { "content-type": "application/json" },
                                body: JSON.stringify(body) });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(typeof data.detail === "string" ? data.detail : `HTTP ${r.status}`);
  return data;
}

async function generateText() {
  const out = $("text-out");
  out.className = "out"; out.textContent = "…";
  try {
    const data = await postJson("/api/text", { prime: $("text-prime").value, length: Number($("text-length").value),
                                               temperature: Number($("text-temperature").value) });
    out.textContent = data.prime + data.text;
  } catch (e) { out.className = "out error"; out.textContent = e.message; }
}

async function drawStrokes() {
  const canvas = $("strokes"), g = canvas.getContext("2d"), cell = 120, cols = canvas.width / cell;
  const n = cols * Math.floor(canvas.height / cell);
  $("strokes-status").textContent = "drawing…";
  try {
    const data = await postJson("/api/strokes", { n, temperature: Number($("strokes-temperature").value),
                                                  seed: Number($("strokes-seed").value) || 0 });
    g.fillStyle = "#f4f1ea"; g.fillRect(0, 0, canvas.width, canvas.height);
    g.strokeStyle = "#111"; g.lineWidth = 2.5; g.lineCap = g.lineJoin = "round";
    const k = (cell - 16) / data.canvas;
    data.drawings.forEach((rows, i) => {
      const ox = (i % cols) * cell + 8, oy = Math.floor(i / cols) * cell + 8;
      let x = 0, y = 0, penDown = false;
      g.save();
      g.beginPath(); g.rect(ox - 6, oy - 6, cell - 4, cell - 4); g.clip();  // a wild sample stays in its cell
      g.beginPath();
      for (const [dx, dy, lifted] of rows) {
        x += dx; y += dy;
        if (penDown) g.lineTo(ox + x * k, oy + y * k); else g.moveTo(ox + x * k, oy + y * k);
        penDown = lifted === 0;
      }
      g.stroke();
      g.restore();
    });
    canvas.dataset.drawings = String(data.drawings.length);
    $("strokes-status").textContent = `${data.drawings.length} samples`;
  } catch (e) { $("strokes-status").textContent = e.message; $("strokes-status").className = "error"; }
}

// ---------- the music model selector ----------
async function fillModels() {
  try {
    const models = (await (await fetch("/api/models")).json()).filter((m) => m.kind === "music" && m.loaded);
    for (const m of models) {
      const option = new Option(m.default ? `${m.name} (default)` : m.name, m.name);
      option.title = m.file;
      $("model").add(option);
      if (m.default) $("model").value = m.name;
    }
    $("model-label").hidden = models.length < 2;  // one model: nothing to choose
  } catch (e) { /* no list: streams use the server's default model */ }
}

// ---------- wiring ----------
function wire() {
  for (const [i, name] of KEYS.entries()) {
    $("key").add(new Option(`${name} major`, name));
    $("key").add(new Option(`${KEYS[(i + 9) % 12]} minor`, `${KEYS[(i + 9) % 12]} minor`));
  }
  $("start").onclick = startLive;
  $("stop").onclick = () => send({ type: "stop" });
  $("pause").onclick = () => {
    send({ type: live.paused ? "resume" : "pause" });
    $("pause").textContent = live.paused ? "Pause" : "Resume";
  };
  $("download").onclick = download;
  const showTemperature = () => { $("temperature-value").textContent = Number($("temperature").value).toFixed(2); };
  const showDensity = () => {
    $("density-value").textContent = $("density").value === "0" ? "off" : `${$("density").value}/s`;
  };
  $("temperature").oninput = showTemperature;
  $("density").oninput = showDensity;
  $("temperature").onchange = () => { showTemperature(); send({ type: "control", temperature: controls().temperature }); };
  $("density").onchange = () => { showDensity(); send({ type: "control", density: controls().density }); };
  $("key").onchange = () => send({ type: "control", key: controls().key });
  $("text-go").onclick = generateText;
  $("strokes-go").onclick = drawStrokes;
  fillModels();
  fetch("/api/health").then((r) => r.json()).then((h) => {
    const names = Object.entries(h.models).map(([k, ok]) => `${k} ${ok ? "✓" : "✗"}`).join(" · ");
    $("health").textContent = `models: ${names}`;
  }).catch(() => { $("health").textContent = "service unreachable"; });
  setupMidi();
  requestAnimationFrame(drawRoll);
}

document.addEventListener("DOMContentLoaded", wire);
