// The Performance RNN page: a live stream over /api/live played by a sampled piano (a SoundFont in an
// AudioWorklet, spessasynth, served from /static/vendor/; a small oscillator synth only if that fails) or a Web MIDI
// output, drawn on a scrolling piano roll; a text panel that streams; a strokes panel to draw with the model.
// Nothing is fetched from another host (the page's Content-Security-Policy says so too).
"use strict";

const $ = (id) => document.getElementById(id);
const BUFFER_S = 0.15;       // play each note this long after its due time, to absorb network jitter
const ROLL_SECONDS = 8;      // seconds of history across the piano roll
const LOW = 21, HIGH = 108;  // piano range drawn
const KEYS = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"];
const VENDOR = "/static/vendor";

// ---------- sound: one AudioContext, a master gain and an analyser; a SoundFont piano or an oscillator ----------
class Oscillators {  // the fallback: a tiny polyphonic triangle-wave synth
  constructor(ctx, out) { this.ctx = ctx; this.out = out; this.voices = new Map(); }
  noteOn(pitch, velocity, t) {
    this.noteOff(pitch, t);
    const osc = this.ctx.createOscillator(), gain = this.ctx.createGain();
    osc.type = "triangle";
    osc.frequency.value = 440 * Math.pow(2, (pitch - 69) / 12);
    gain.gain.setValueAtTime(0, t);
    gain.gain.linearRampToValueAtTime(0.15 + 0.6 * velocity / 127, t + 0.005);
    gain.gain.setTargetAtTime(0.05, t + 0.01, 0.8);  // a piano-ish decay while held
    osc.connect(gain).connect(this.out);
    osc.start(t);
    this.voices.set(pitch, { osc, gain });
  }
  noteOff(pitch, t) {
    const v = this.voices.get(pitch);
    if (!v) return;
    v.gain.gain.cancelScheduledValues(t);
    v.gain.gain.setTargetAtTime(0, t, 0.06);
    v.osc.stop(t + 0.5);
    this.voices.delete(pitch);
  }
  allOff() { for (const p of [...this.voices.keys()]) this.noteOff(p, this.ctx.currentTime); }
}

class Piano {  // the SoundFont player: spessasynth's WorkletSynthesizer with our piano.sf3
  static async load(ctx, out) {
    await ctx.audioWorklet.addModule(`${VENDOR}/spessasynth_processor.min.js`);
    const { WorkletSynthesizer } = await import(`${VENDOR}/spessasynth_lib.min.js`);
    const r = await fetch(`${VENDOR}/piano.sf3`);
    if (!r.ok) throw new Error(`piano.sf3: HTTP ${r.status}`);
    const synth = new WorkletSynthesizer(ctx);
    synth.connect(out);
    await synth.isReady;
    await synth.soundBankManager.addSoundBank(await r.arrayBuffer(), "piano");
    synth.programChange(0, 0);
    return new Piano(synth);
  }
  constructor(synth) { this.synth = synth; }
  noteOn(pitch, velocity, t) { this.synth.noteOn(0, pitch, velocity, { time: t }); }
  noteOff(pitch, t) { this.synth.noteOff(0, pitch, { time: t }); }
  allOff() { this.synth.stopAll(); }
}

class Sound {
  constructor() { this.ctx = null; this.engine = null; this.kind = "none"; this.notes = 0; this.ready = null; }
  start() {  // called on a click: create (or resume) the context, load the piano once
    if (!this.ctx) {
      try {
        const AC = window.AudioContext || window.webkitAudioContext;
        this.ctx = new AC({ latencyHint: "playback" });
        this.master = this.ctx.createGain();
        this.master.gain.value = 0.8;
        this.analyser = this.ctx.createAnalyser();
        this.analyser.fftSize = 2048;
        this.master.connect(this.analyser).connect(this.ctx.destination);
      } catch (e) { this.ctx = null; this.show("none", `no WebAudio here (${e.message})`); return Promise.resolve(); }
      this.show("loading", "loading the piano…");
      this.ready = Piano.load(this.ctx, this.master).then((piano) => {
        this.engine = piano; this.show("soundfont", "sampled piano (SoundFont)");
      }).catch((e) => {
        console.warn("the SoundFont piano failed to load", e);
        this.engine = new Oscillators(this.ctx, this.master);
        this.show("oscillator", `oscillator (the piano failed to load: ${e.message})`, true);
      });
    }
    if (this.ctx && this.ctx.state === "suspended") this.ctx.resume();
    return this.ready || Promise.resolve();
  }
  show(kind, text, isError) {
    this.kind = kind;
    const el = $("audio-status");
    el.dataset.engine = kind; el.textContent = text; el.className = isError ? "error" : "muted";
  }
  at(perfS) { // a performance.now() time (s) -> AudioContext time
    return this.ctx.currentTime + Math.max(0, perfS - performance.now() / 1000);
  }
  noteOn(pitch, velocity, perfS) {
    if (!this.engine) return;
    this.engine.noteOn(pitch, velocity, this.at(perfS));
    this.notes += 1;
    $("audio-status").dataset.notes = String(this.notes);
  }
  noteOff(pitch, perfS) { if (this.engine) this.engine.noteOff(pitch, this.at(perfS)); }
  allOff() { if (this.engine) this.engine.allOff(); }
  rms() {  // what the page is playing right now, for the browser test and anyone curious
    if (!this.analyser) return 0;
    const buf = new Float32Array(this.analyser.fftSize);
    this.analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const v of buf) sum += v * v;
    return Math.sqrt(sum / buf.length);
  }
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
const sound = new Sound();
const live = { ws: null, origin: 0, paused: false, rollNotes: [], open: new Map(), played: [], lastT: 0,
               shown: 0, primer: null, received: [] };

async function startLive() {
  $("start").disabled = true;
  await Promise.race([sound.start(), new Promise((resolve) => setTimeout(resolve, 10000))]);
  stopLive(true);
  Object.assign(live, { rollNotes: [], open: new Map(), played: [], lastT: 0, paused: false, shown: 0, received: [] });
  $("note-count").textContent = "0";
  $("piano-roll").dataset.notes = "0";
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/live`);
  live.ws = ws;
  const model = $("model").value || undefined;  // unset: the server's default music model
  const primer_notes = live.primer || undefined;  // an uploaded .mid's notes, read by /api/music/primer
  ws.onopen = () => ws.send(JSON.stringify({ type: "start", model, seed: Number($("seed").value) || 0,
                                             primer_notes, ...controls() }));
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
    if (live.received.length < 200) live.received.push([msg.t, msg.on ? 1 : 0, msg.pitch, msg.velocity]);
    if (msg.on) {
      sound.noteOn(msg.pitch, msg.velocity, due);
      midiSend([0x90, msg.pitch, msg.velocity], due);
      midi.sounding.add(msg.pitch);
      const note = { pitch: msg.pitch, velocity: msg.velocity, on: due, off: null, t: msg.t };
      live.rollNotes.push(note);
      live.open.set(msg.pitch, note);
    } else {
      sound.noteOff(msg.pitch, due);
      midiSend([0x80, msg.pitch, 0], due);
      midi.sounding.delete(msg.pitch);
      closeNote(msg.pitch, due, msg.t);
    }
  } else if (msg.type === "paused") {
    live.paused = true;
    sound.allOff(); midiAllOff();
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
  sound.allOff(); midiAllOff();
}

function finish(reason) {
  const now = performance.now() / 1000;
  for (const pitch of [...live.open.keys()]) closeNote(pitch, now, live.lastT);
  sound.allOff(); midiAllOff();
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

// ---------- the piano roll: pitch labels on the left, velocity as shade and as stems in a lane below ----------
const LABEL_W = 34, LANE_H = 56;
function drawRoll() {
  const canvas = $("piano-roll"), g = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height - LANE_H, now = performance.now() / 1000;
  const x0roll = LABEL_W, playX = W * 0.85, pps = (playX - x0roll) / ROLL_SECONDS, rowH = H / (HIGH - LOW + 1);
  g.fillStyle = "#0b0e11"; g.fillRect(0, 0, W, canvas.height);
  g.fillStyle = "#151b21";
  for (let p = LOW; p <= HIGH; p++) if ([1, 3, 6, 8, 10].includes(p % 12)) g.fillRect(x0roll, H - (p - LOW + 1) * rowH, W, rowH);
  g.font = "10px system-ui, sans-serif"; g.textBaseline = "middle";
  for (let p = LOW; p <= HIGH; p++) {
    if (p % 12 !== 0) continue;  // C1 .. C8 (middle C = C4)
    const y = H - (p - LOW + 1) * rowH;
    g.fillStyle = "#26303a"; g.fillRect(x0roll, y + rowH - 1, W, 1);
    g.fillStyle = "#8b96a1"; g.fillText(`C${p / 12 - 1}`, 4, Math.max(7, y + rowH / 2));
  }
  g.fillStyle = "#151b21"; g.fillRect(0, H, W, LANE_H);
  g.fillStyle = "#8b96a1"; g.fillText("vel", 4, H + LANE_H / 2);
  live.rollNotes = live.rollNotes.filter((n) => n.off === null || n.off > now - ROLL_SECONDS - 1);
  let shown = live.shown;
  g.save(); g.beginPath(); g.rect(x0roll, 0, W - x0roll, canvas.height); g.clip();
  for (const n of live.rollNotes) {
    if (n.on > now + 1) continue;
    const x0 = playX - (now - n.on) * pps, x1 = playX - (now - (n.off ?? now)) * pps;
    const y = H - (n.pitch - LOW + 1) * rowH, v = n.velocity / 127;
    const colour = `hsl(${200 + (n.pitch % 12) * 10}, 80%, ${25 + 55 * v}%)`;  // louder: lighter
    g.fillStyle = colour;
    g.fillRect(x0, y, Math.max(2, Math.min(x1, playX) - x0), Math.max(2, rowH));
    if (x0 <= playX) { const h = (LANE_H - 6) * v; g.fillRect(x0, H + LANE_H - 2 - h, 2, h); }  // velocity stem
    if (!n.drawn && n.on <= now) { n.drawn = true; shown += 1; }
  }
  g.restore();
  g.fillStyle = "#4fb3ff"; g.fillRect(playX, 0, 2, canvas.height);
  if (shown !== live.shown) {
    live.shown = shown;
    canvas.dataset.notes = String(shown);
    $("note-count").textContent = String(shown);
  }
  requestAnimationFrame(drawRoll);
}

// ---------- a primer: a .mid read by the server into notes that the next live stream starts from ----------
async function uploadPrimer() {
  const file = $("primer-file").files[0], status = $("primer-status");
  if (!file) return;
  status.className = "muted"; status.textContent = "reading…";
  const form = new FormData();
  form.append("primer", file, file.name);
  try {
    const r = await fetch("/api/music/primer", { method: "POST", body: form });
    if (!r.ok) throw new Error(await reason(r));
    const notes = await r.json();
    if (!notes.length) throw new Error("the file has no pitched notes");
    live.primer = notes;
    const seconds = Math.max(...notes.map((n) => n.end_s));
    status.textContent = `primer: ${file.name}, ${notes.length} notes, ${seconds.toFixed(1)} s — the next Start continues it`;
    status.dataset.notes = String(notes.length);
    $("primer-clear").disabled = false;
  } catch (e) {
    clearPrimer();
    status.className = "error"; status.textContent = `primer refused: ${e.message}`;
  }
}
function clearPrimer() {
  live.primer = null;
  $("primer-file").value = "";
  $("primer-status").className = "muted";
  $("primer-status").textContent = "no primer: the model starts from silence";
  $("primer-status").dataset.notes = "0";
  $("primer-clear").disabled = true;
}

// ---------- errors and NDJSON streams ----------
async function reason(r) {  // the server's reason for a refusal: {"detail": "..."} or FastAPI's list of field errors
  const data = await r.json().catch(() => null);
  const detail = data && data.detail;
  if (typeof detail === "string") return `${r.status}: ${detail}`;
  if (Array.isArray(detail) && detail.length) {
    return `${r.status}: ` + detail.map((e) => {
      const where = (e.loc || []).filter((x) => x !== "body").join(".");
      return where ? `${where}: ${e.msg}` : e.msg;
    }).join("; ");
  }
  return `HTTP ${r.status}`;
}

async function postJson(path, body) {
  const r = await fetch(path, { method: "POST", headers: { "content-type": "application/json" },
                                body: JSON.stringify(body) });
  if (!r.ok) throw new Error(await reason(r));
  return r.json();
}

async function postStream(path, body, onLine, signal) {  // POST JSON, call onLine(obj) for each NDJSON line as it comes
  const r = await fetch(path, { method: "POST", headers: { "content-type": "application/json" },
                                body: JSON.stringify(body), signal });
  if (!r.ok) throw new Error(await reason(r));
  const reader = r.body.getReader(), decoder = new TextDecoder();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl); buffered = buffered.slice(nl + 1);
      if (!line) continue;
      const msg = JSON.parse(line);
      if (msg.type === "error") throw new Error(msg.detail);
      onLine(msg);
    }
  }
}

// ---------- text: the continuation streams in as it is sampled ----------
let textAbort = null;
async function generateText() {
  const out = $("text-out");
  if (textAbort) textAbort.abort();
  const abort = textAbort = new AbortController();
  const prime = $("text-prime").value;
  out.className = "out"; out.textContent = prime; out.dataset.chunks = "0"; out.dataset.done = "0";
  $("text-stop").disabled = false;
  try {
    await postStream("/api/text/stream", { prime, length: Number($("text-length").value),
                                           temperature: Number($("text-temperature").value) }, (msg) => {
      if (msg.type === "text") {
        out.textContent += msg.text;
        out.dataset.chunks = String(Number(out.dataset.chunks) + 1);
        out.scrollTop = out.scrollHeight;
      } else if (msg.type === "end") {
        out.dataset.done = "1";
      }
    }, abort.signal);
  } catch (e) {
    if (e.name !== "AbortError") { out.className = "out error"; out.textContent = e.message; }
  } finally {
    if (textAbort === abort) { textAbort = null; $("text-stop").disabled = true; }
  }
}

// ---------- strokes: a grid of samples ----------
async function drawStrokes() {
  const canvas = $("strokes"), g = canvas.getContext("2d"), cell = 120, cols = canvas.width / cell;
  const n = cols * Math.floor(canvas.height / cell);
  $("strokes-status").className = "muted"; $("strokes-status").textContent = "drawing…";
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

// ---------- strokes: draw with the model ----------
// Points are kept in KanjiVG units (a 109 x 109 square, y down), the stroke model's own; the canvas scales them.
const CANVAS_UNITS = 109, MIN_STEP = 1.5, MAX_POINTS = 250;
const draw = { user: [], model: [], current: null, abort: null };

function toUnits(canvas, e) {
  const rect = canvas.getBoundingClientRect();
  return [Math.round(((e.clientX - rect.left) / rect.width) * CANVAS_UNITS * 100) / 100,
          Math.round(((e.clientY - rect.top) / rect.height) * CANVAS_UNITS * 100) / 100];
}

function redrawDrawing() {
  const canvas = $("draw"), g = canvas.getContext("2d"), k = canvas.width / CANVAS_UNITS;
  g.fillStyle = "#f4f1ea"; g.fillRect(0, 0, canvas.width, canvas.height);
  g.lineCap = g.lineJoin = "round";
  const stroke = (points, colour, width) => {
    g.strokeStyle = colour; g.fillStyle = colour; g.lineWidth = width;
    if (points.length === 1) { g.beginPath(); g.arc(points[0][0] * k, points[0][1] * k, width / 2, 0, 2 * Math.PI); g.fill(); return; }
    g.beginPath();
    points.forEach(([x, y], i) => (i ? g.lineTo(x * k, y * k) : g.moveTo(x * k, y * k)));
    g.stroke();
  };
  for (const s of draw.user) stroke(s, "#111", 4);
  if (draw.current) stroke(draw.current, "#111", 4);
  for (const s of draw.model) stroke(s, "#1f78d1", 4);
  canvas.dataset.userStrokes = String(draw.user.length);
  canvas.dataset.modelStrokes = String(draw.model.length);
  const last = draw.user.length ? draw.user[draw.user.length - 1] : null;
  canvas.dataset.userLast = last ? last[last.length - 1].map((v) => (v * k).toFixed(2)).join(",") : "";
  canvas.dataset.modelFirst = draw.model.length ? draw.model[0][0].map((v) => (v * k).toFixed(2)).join(",") : "";
}

function drawStatus(text, isError) {
  $("draw-status").textContent = text;
  $("draw-status").className = isError ? "error" : "muted";
}

function wireDrawing() {
  const canvas = $("draw");
  canvas.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    cancelContinuation();
    draw.model = [];  // a new stroke of yours: the model's last continuation goes
    draw.current = [toUnits(canvas, e)];
    redrawDrawing();
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!draw.current) return;
    const p = toUnits(canvas, e), q = draw.current[draw.current.length - 1];
    if (Math.hypot(p[0] - q[0], p[1] - q[1]) < MIN_STEP) return;  // thin the points: the model draws in ~5-unit steps
    draw.current.push(p);
    redrawDrawing();
  });
  const end = (e) => {
    if (!draw.current) return;
    const p = toUnits(canvas, e), q = draw.current[draw.current.length - 1];
    if (Math.hypot(p[0] - q[0], p[1] - q[1]) >= 0.5) draw.current.push(p);
    draw.user.push(draw.current);
    draw.current = null;
    redrawDrawing();
    const total = draw.user.reduce((n, s) => n + s.length, 0);
    drawStatus(`${draw.user.length} strokes, ${total} points`);
    if ($("draw-auto").checked) continueDrawing();
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
}

function cancelContinuation() {
  if (draw.abort) { draw.abort.abort(); draw.abort = null; }
}

async function continueDrawing() {
  if (!draw.user.length) { drawStatus("draw something first", true); return; }
  cancelContinuation();
  const abort = draw.abort = new AbortController();
  draw.model = [];
  redrawDrawing();
  drawStatus("the model is drawing…");
  $("draw").dataset.done = "0";
  const body = { strokes: draw.user, pen_down: $("draw-carry").checked,
                 temperature: Number($("draw-temperature").value), seed: Number($("draw-seed").value) || 0 };
  try {
    await postStream("/api/strokes/continue", body, (msg) => {
      if (msg.type === "stroke") { draw.model.push(msg.points); redrawDrawing(); }
      else if (msg.type === "end") {
        drawStatus(`the model added ${msg.strokes} strokes (${msg.points} points)`);
        $("draw").dataset.done = "1";
      }
    }, abort.signal);
  } catch (e) {
    if (e.name !== "AbortError") drawStatus(e.message, true);
  } finally {
    if (draw.abort === abort) draw.abort = null;
  }
}

function undoDrawing() {
  cancelContinuation();
  if (draw.model.length) draw.model = []; else draw.user.pop();
  redrawDrawing();
  drawStatus(`${draw.user.length} strokes`);
}

function clearDrawing() {
  cancelContinuation();
  draw.user = []; draw.model = []; draw.current = null;
  redrawDrawing();
  drawStatus("draw a few strokes; the model carries on when you lift the pen");
}

function downloadSvg() {
  const path = (s) => s.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(2)} ${y.toFixed(2)}`).join(" ");
  const lines = [
    ...draw.user.map((s) => `<path d="${path(s)}" stroke="#111"/>`),
    ...draw.model.map((s) => `<path d="${path(s)}" stroke="#1f78d1"/>`),
  ];
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${CANVAS_UNITS} ${CANVAS_UNITS}" ` +
    `width="436" height="436"><rect width="100%" height="100%" fill="#f4f1ea"/>` +
    `<g fill="none" stroke-width="1" stroke-linecap="round" stroke-linejoin="round">${lines.join("")}</g></svg>\n`;
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([svg], { type: "image/svg+xml" }));
  a.download = "drawing.svg";
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
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
  $("primer-file").onchange = uploadPrimer;
  $("primer-clear").onclick = clearPrimer;
  $("text-go").onclick = generateText;
  $("text-stop").onclick = () => { if (textAbort) textAbort.abort(); };
  $("strokes-go").onclick = drawStrokes;
  $("draw-temperature").oninput = () => {
    $("draw-temperature-value").textContent = Number($("draw-temperature").value).toFixed(2);
  };
  $("draw-continue").onclick = continueDrawing;
  $("draw-undo").onclick = undoDrawing;
  $("draw-clear").onclick = clearDrawing;
  $("draw-svg").onclick = downloadSvg;
  wireDrawing();
  redrawDrawing();
  fillModels();
  fetch("/api/health").then((r) => r.json()).then((h) => {
    const names = Object.entries(h.models).map(([k, ok]) => `${k} ${ok ? "✓" : "✗"}`).join(" · ");
    $("health").textContent = `models: ${names}`;
  }).catch(() => { $("health").textContent = "service unreachable"; });
  setupMidi();
  requestAnimationFrame(drawRoll);
}

window.perfrnn = { sound, live, draw };  // for the browser test (and the curious): what plays, what was received
document.addEventListener("DOMContentLoaded", wire);
