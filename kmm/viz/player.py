"""A self-contained motion player: one HTML page (vanilla JS on a <canvas>, no CDN, works offline) that
plays `(T, 22, 3)` joints in a loop, with pause, a scrub bar and the current segment's text.

`player_html(motions, ...)` returns an `<iframe srcdoc=...>`: Gradio's gr.HTML inserts markup with innerHTML,
which never runs <script> tags, but an iframe's own document does run its inline script. Several motions
(the Compare tab) play in panels of one canvas, driven by one clock, so they stay in sync.

Camera (per panel, computed per frame in the page):
1. the target follows the pelvis on the floor plane, smoothed over ±0.5 s (no lag for steady walking) and
   never more than 0.25 m from it;
2. the zoom and the vertical centre fit the body's own extent (its height and its reach around the target,
   a running max over ±0.5 s, then smoothed), so a crouch is framed as a crouch and a floating body is still
   framed; minimum sizes keep a curled-up body from being blown up. The body stays large for a 2-s clip
   and a 64-segment timeline alike;
3. orthographic three-quarter view (yaw 35°, pitch 18°); drag to turn, double-click to reset;
4. the whole root path is drawn on the floor, and again in a top-down minimap in the corner.

Payload: joints relative to the pelvis's floor position as int16 millimetres, the pelvis floor path as
float32, both base64 — about 0.2 MB for a 60-s motion. Long motions are thinned to at most MAX_FRAMES.

For tests, the page exposes `document.body.dataset` `frame`, `playing` and `bbox` (JSON: per panel the
drawn body's [x0, y0, x1, y1] and the panel's [x, y, w, h], CSS pixels), and `window.kmmPlayer`
(`seek(frame)`, `play()`, `pause()`).
"""
from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence

import numpy as np

from kmm.motion import skeleton

MAX_FRAMES = 8000          # frames sent to the browser per motion (longer motions are thinned)
LEFT_COLOR, RIGHT_COLOR, SPINE_COLOR = "#d62728", "#1f77b4", "#6a3d9a"   # body colours (tests look for them)
BACKGROUND = "#f3f4f6"


def encode_motion(joints: np.ndarray, stride: int = 1) -> dict:
    """(T, 22, 3) metres → {"n", "root": b64 float32 (n, 2) pelvis x/z, "local": b64 int16 (n, 22, 3) mm}.

    >>> m = encode_motion(np.zeros((4, 22, 3), np.float32)); m["n"]
    4
    """
    j = np.asarray(joints, dtype=np.float64)[::max(1, int(stride))]
    if j.ndim != 3 or j.shape[1:] != (skeleton.N_JOINTS, 3) or len(j) == 0:
        raise ValueError(f"joints must have shape (T, {skeleton.N_JOINTS}, 3) with T >= 1, got {np.shape(joints)}")
    root = j[:, 0, [0, 2]]                                        # (n, 2)
    local = j.copy()
    local[:, :, 0] -= root[:, None, 0]
    local[:, :, 2] -= root[:, None, 1]
    local_mm = np.clip(np.round(local * 1000.0), -32767, 32767).astype("<i2")
    return {"n": int(len(j)),
            "root": base64.b64encode(root.astype("<f4").tobytes()).decode("ascii"),
            "local": base64.b64encode(local_mm.tobytes()).decode("ascii")}


def player_data(motions: Sequence[tuple[str, np.ndarray]], texts: Sequence[str] = (),
                boundaries: Sequence[int] = (), fps: float = skeleton.FPS, autoplay: bool = True) -> dict:
    """The JSON the page reads: motions (label + encoded joints), segment texts and their times in seconds."""
    if not motions:
        raise ValueError("nothing to play: no motions")
    longest = max(len(j) for _, j in motions)
    stride = max(1, -(-longest // MAX_FRAMES))
    bounds = [float(b) / fps for b in boundaries] if len(boundaries) == len(texts) + 1 else []
    return {"fps": fps / stride, "texts": [str(t) for t in texts] if bounds else [], "bounds_s": bounds,
            "autoplay": bool(autoplay),
            "motions": [{"label": str(label), **encode_motion(j, stride)} for label, j in motions],
            "parents": list(skeleton.PARENTS), "left": list(skeleton.LEFT_CHAIN),
            "right": list(skeleton.RIGHT_CHAIN),
            "colors": {"left": LEFT_COLOR, "right": RIGHT_COLOR, "spine": SPINE_COLOR, "bg": BACKGROUND}}


def player_page(data: dict) -> str:
    """The full HTML document of the player for `player_data(...)`."""
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return _PAGE.replace("/*DATA*/null", payload)


def player_html(motions: Sequence[tuple[str, np.ndarray]], texts: Sequence[str] = (),
                boundaries: Sequence[int] = (), fps: float = skeleton.FPS, autoplay: bool = True,
                height: int = 520, elem_id: str = "kmm-player") -> str:
    """An <iframe> holding the player (for gr.HTML). `height` is the first guess; the page resizes its iframe."""
    page = player_page(player_data(motions, texts, boundaries, fps, autoplay))
    return (f'<iframe id="{html.escape(elem_id)}" class="kmm-player" title="motion player" '
            f'style="width:100%;height:{int(height)}px;border:0;display:block;border-radius:8px" '
            f'srcdoc="{html.escape(page, quote=True)}"></iframe>')


_PAGE = r"""<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 html,body{margin:0;padding:0;background:transparent;font-family:system-ui,-apple-system,"Segoe UI",sans-serif}
 #wrap{background:#f3f4f6;border-radius:8px;overflow:hidden}
 canvas{display:block;width:100%;touch-action:none;cursor:grab}
 #bar{display:flex;align-items:center;gap:8px;padding:6px 8px;background:#e5e7eb;color:#111}
 #play{font-size:15px;width:38px;height:30px;border:1px solid #9ca3af;border-radius:6px;background:#fff;color:#111;
       cursor:pointer;flex:none}
 #scrub{flex:1;min-width:60px}
 #time{font-variant-numeric:tabular-nums;font-size:13px;white-space:nowrap;flex:none}
 #seg{padding:4px 8px 6px;font-size:14px;color:#111;background:#e5e7eb;white-space:nowrap;overflow:hidden;
      text-overflow:ellipsis;min-height:18px}
</style></head>
<body><div id="wrap"><canvas id="cv"></canvas>
<div id="bar"><button id="play" title="play / pause (space)" aria-label="pause">&#10074;&#10074;</button>
<input id="scrub" type="range" min="0" value="0" step="1" aria-label="time"><span id="time"></span></div>
<div id="seg"></div></div>
<script>
"use strict";
const D = /*DATA*/null;
const cv = document.getElementById("cv"), ctx = cv.getContext("2d");
const playBtn = document.getElementById("play"), scrub = document.getElementById("scrub");
const timeEl = document.getElementById("time"), segEl = document.getElementById("seg");
const NJ = 22, FPS = D.fps, PITCH = 18 * Math.PI / 180, YAW0 = 35 * Math.PI / 180, LEASH = 0.25;
let yaw = YAW0;

function bytes(b64) { const s = atob(b64), u = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) u[i] = s.charCodeAt(i); return u.buffer; }
function boxSmooth(a, r) { const n = a.length, out = new Float64Array(n), c = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) c[i + 1] = c[i] + a[i];
  for (let i = 0; i < n; i++) { const lo = Math.max(0, i - r), hi = Math.min(n, i + r + 1); out[i] = (c[hi] - c[lo]) / (hi - lo); }
  return out; }
function runMax(a, r) { const n = a.length, out = new Float64Array(n);
  for (let i = 0; i < n; i++) { let m = -Infinity; for (let k = Math.max(0, i - r); k <= Math.min(n - 1, i + r); k++) m = Math.max(m, a[k]); out[i] = m; }
  return out; }

// 1. decode each motion to absolute positions; 2. per-frame camera target and zoom
const M = D.motions.map(m => {
  const root = new Float32Array(bytes(m.root)), loc = new Int16Array(bytes(m.local)), n = m.n;
  const P = new Float32Array(n * NJ * 3);
  let floor = Infinity;
  for (let t = 0; t < n; t++) for (let j = 0; j < NJ; j++) {
    const i = (t * NJ + j) * 3;
    P[i] = loc[i] / 1000 + root[2 * t]; P[i + 1] = loc[i + 1] / 1000; P[i + 2] = loc[i + 2] / 1000 + root[2 * t + 1];
    floor = Math.min(floor, P[i + 1]);
  }
  const rx = new Float64Array(n), rz = new Float64Array(n);
  for (let t = 0; t < n; t++) { rx[t] = root[2 * t]; rz[t] = root[2 * t + 1]; }
  const r = Math.max(1, Math.round(FPS * 0.5));
  const cx = boxSmooth(rx, r), cz = boxSmooth(rz, r);
  const rad = new Float64Array(n), top = new Float64Array(n), low = new Float64Array(n);
  for (let t = 0; t < n; t++) {
    // the smoothed target never strays more than LEASH m from the pelvis, so a jerky path cannot shrink the body
    const dx = rx[t] - cx[t], dz = rz[t] - cz[t], d = Math.hypot(dx, dz);
    if (d > LEASH) { cx[t] = rx[t] - dx * LEASH / d; cz[t] = rz[t] - dz * LEASH / d; }
    let m = 0, hi = -Infinity, lo = Infinity;
    for (let j = 0; j < NJ; j++) { const i = (t * NJ + j) * 3;
      m = Math.max(m, Math.hypot(P[i] - cx[t], P[i + 2] - cz[t])); hi = Math.max(hi, P[i + 1]); lo = Math.min(lo, P[i + 1]); }
    rad[t] = m; top[t] = hi; low[t] = lo; }
  // zoom and height follow the pose (a crouch is framed as a crouch), steadied over about a second
  const w = Math.max(1, Math.round(FPS * 0.5));
  const R = boxSmooth(runMax(rad, w), w), Y0 = boxSmooth(low, w), Y1 = boxSmooth(top, w);
  const H = boxSmooth(runMax(top.map((v, t) => v - low[t]), w), w);
  let minx = Infinity, maxx = -Infinity, minz = Infinity, maxz = -Infinity;
  for (let t = 0; t < n; t++) { minx = Math.min(minx, rx[t]); maxx = Math.max(maxx, rx[t]); minz = Math.min(minz, rz[t]); maxz = Math.max(maxz, rz[t]); }
  return {label: m.label, n, P, floor, rx, rz, cx, cz, R, H, Y0, Y1, box: [minx, maxx, minz, maxz]};
});
const N = Math.max(...M.map(m => m.n));
scrub.max = N - 1;
const PAR = D.parents, LEFT = new Set(D.left), RIGHT = new Set(D.right);
const BONES = []; for (let c = 1; c < NJ; c++) BONES.push([PAR[c], c, LEFT.has(c) ? D.colors.left : RIGHT.has(c) ? D.colors.right : D.colors.spine]);

let panels = [], cssW = 0, cssH = 0;
function layout() {
  const W = Math.max(200, document.documentElement.clientWidth);
  const n = M.length, cols = n === 1 ? 1 : Math.min(n, W < 640 ? 2 : 3), rows = Math.ceil(n / cols);
  const ph = n === 1 ? Math.round(Math.min(560, Math.max(300, W * 0.62))) : Math.round(Math.max(200, Math.min(340, W / cols * 0.95)));
  cssW = W; cssH = ph * rows;
  const dpr = window.devicePixelRatio || 1;
  cv.width = Math.round(W * dpr); cv.height = Math.round(cssH * dpr); cv.style.height = cssH + "px";
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  panels = M.map((m, k) => ({x: (k % cols) * W / cols, y: Math.floor(k / cols) * ph, w: W / cols, h: ph}));
  if (window.frameElement) window.frameElement.style.height = document.getElementById("wrap").offsetHeight + "px";
}

function project(x, y, z, c) {   // world -> panel pixels (orthographic, yaw then pitch)
  const dx = x - c.cx, dy = y - c.cy, dz = z - c.cz;
  const x1 = dx * Math.cos(yaw) - dz * Math.sin(yaw), z1 = dx * Math.sin(yaw) + dz * Math.cos(yaw);
  const u = dy * Math.cos(PITCH) - z1 * Math.sin(PITCH), depth = z1 * Math.cos(PITCH) + dy * Math.sin(PITCH);
  return [c.ox + c.s * x1, c.oy - c.s * u, depth];
}

function drawPanel(m, p, f) {
  const t = Math.min(f, m.n - 1);
  // 1. camera for this frame: target on the pelvis path, zoom from the body's extent
  const R = Math.max(0.45, m.R[t]), Hb = Math.max(0.75, m.H[t]);
  const s = Math.min(0.86 * p.w / (2 * R + 0.2), 0.78 * (p.h - 34) / (Hb * Math.cos(PITCH) + 2 * R * Math.sin(PITCH)));
  const c = {cx: m.cx[t], cz: m.cz[t], cy: (m.Y0[t] + m.Y1[t]) / 2, s, ox: p.x + p.w / 2, oy: p.y + 34 + (p.h - 34) / 2};
  ctx.save(); ctx.beginPath(); ctx.rect(p.x, p.y, p.w, p.h); ctx.clip();
  ctx.fillStyle = D.colors.bg; ctx.fillRect(p.x, p.y, p.w, p.h);
  // 2. floor grid (1 m) around the target
  const span = Math.min(40, Math.ceil(Math.max(p.w, p.h) / s) + 2);
  ctx.strokeStyle = "#d4d8de"; ctx.lineWidth = 1; ctx.beginPath();
  const gx = Math.round(c.cx), gz = Math.round(c.cz);
  for (let k = -span; k <= span; k++) {
    let a = project(gx + k, m.floor, gz - span, c), b = project(gx + k, m.floor, gz + span, c);
    ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]);
    a = project(gx - span, m.floor, gz + k, c); b = project(gx + span, m.floor, gz + k, c);
    ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]);
  }
  ctx.stroke();
  // 3. root path on the floor: travelled part solid, the rest faint
  const step = Math.max(1, Math.floor(m.n / 4000));
  for (const [a0, a1, col, wdt] of [[0, m.n - 1, "rgba(44,160,44,0.30)", 2], [0, t, "rgba(44,160,44,0.9)", 2.5]]) {
    ctx.strokeStyle = col; ctx.lineWidth = wdt; ctx.beginPath();
    for (let i = a0; i <= a1; i += step) { const q = project(m.rx[i], m.floor, m.rz[i], c); i === a0 ? ctx.moveTo(q[0], q[1]) : ctx.lineTo(q[0], q[1]); }
    ctx.stroke();
  }
  // 4. the body, far bones first
  const Q = []; for (let j = 0; j < NJ; j++) { const i = (t * NJ + j) * 3; Q.push(project(m.P[i], m.P[i + 1], m.P[i + 2], c)); }
  const lw = Math.max(2.5, s * 0.045);
  const order = BONES.map(b => [b, (Q[b[0]][2] + Q[b[1]][2]) / 2]).sort((a, b) => a[1] - b[1]);
  ctx.lineCap = "round";
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const [[a, b, col]] of order) {
    ctx.strokeStyle = col; ctx.lineWidth = lw; ctx.beginPath(); ctx.moveTo(Q[a][0], Q[a][1]); ctx.lineTo(Q[b][0], Q[b][1]); ctx.stroke();
  }
  const head = Q[15]; ctx.fillStyle = D.colors.spine; ctx.beginPath(); ctx.arc(head[0], head[1], Math.max(4, s * 0.09), 0, 2 * Math.PI); ctx.fill();
  for (const q of Q) { x0 = Math.min(x0, q[0] - lw / 2); x1 = Math.max(x1, q[0] + lw / 2); y0 = Math.min(y0, q[1] - lw / 2); y1 = Math.max(y1, q[1] + lw / 2); }
  y0 = Math.min(y0, head[1] - Math.max(4, s * 0.09));
  // 5. minimap of the whole path (top-down), current position as a dot
  const mm = Math.min(96, p.w * 0.24), mx = p.x + p.w - mm - 6, my = p.y + 6;
  ctx.fillStyle = "rgba(255,255,255,0.85)"; ctx.strokeStyle = "#9ca3af"; ctx.lineWidth = 1;
  ctx.fillRect(mx, my, mm, mm); ctx.strokeRect(mx, my, mm, mm);
  const [bx0, bx1, bz0, bz1] = m.box, ext = Math.max(bx1 - bx0, bz1 - bz0, 1), k = (mm - 12) / ext;
  const mp = i => [mx + 6 + (m.rx[i] - (bx0 + bx1) / 2) * k + (mm - 12) / 2, my + 6 + (m.rz[i] - (bz0 + bz1) / 2) * k + (mm - 12) / 2];
  ctx.strokeStyle = "#2ca02c"; ctx.lineWidth = 1.5; ctx.beginPath();
  for (let i = 0; i < m.n; i += step) { const q = mp(i); i === 0 ? ctx.moveTo(q[0], q[1]) : ctx.lineTo(q[0], q[1]); }
  ctx.stroke(); const d = mp(t); ctx.fillStyle = "#111"; ctx.beginPath(); ctx.arc(d[0], d[1], 3, 0, 2 * Math.PI); ctx.fill();
  // 6. label
  ctx.fillStyle = "#111"; ctx.font = "600 13px system-ui,sans-serif"; ctx.textBaseline = "top";
  if (M.length > 1 || m.label) ctx.fillText(m.label, p.x + 8, p.y + 8);
  if (f >= m.n) { ctx.fillStyle = "#6b7280"; ctx.fillText("(ended)", p.x + 8, p.y + 26); }
  ctx.restore();
  if (M.length > 1) { ctx.strokeStyle = "#cbd5e1"; ctx.strokeRect(p.x + 0.5, p.y + 0.5, p.w - 1, p.h - 1); }
  return [x0, y0, x1, y1].map(v => Math.round(v));
}

function segmentAt(sec) { const b = D.bounds_s; for (let k = 0; k + 1 < b.length; k++) if (sec < b[k + 1]) return k; return b.length - 2; }

let frame = 0, playing = !!D.autoplay, t0 = performance.now(), f0 = 0;
function draw() {
  ctx.clearRect(0, 0, cssW, cssH);
  const boxes = M.map((m, k) => ({body: drawPanel(m, panels[k], frame), panel: [panels[k].x, panels[k].y, panels[k].w, panels[k].h].map(Math.round)}));
  const sec = frame / FPS;
  timeEl.textContent = sec.toFixed(1) + " / " + (N / FPS).toFixed(1) + " s";
  if (D.texts.length) { const k = segmentAt(sec); segEl.textContent = "#" + (k + 1) + "/" + D.texts.length + "  " + D.texts[k]; }
  else segEl.style.display = "none";
  scrub.value = frame;
  document.body.dataset.frame = frame; document.body.dataset.playing = playing ? "1" : "0";
  document.body.dataset.bbox = JSON.stringify(boxes);
}
function setPlaying(on) { playing = on; t0 = performance.now(); f0 = frame;
  playBtn.innerHTML = on ? "&#10074;&#10074;" : "&#9654;"; playBtn.setAttribute("aria-label", on ? "pause" : "play"); draw(); }
function tick(now) {
  if (playing) { const f = (f0 + Math.floor((now - t0) / 1000 * FPS)) % N; if (f !== frame) { frame = f; draw(); } }
  requestAnimationFrame(tick);
}
playBtn.onclick = () => setPlaying(!playing);
scrub.addEventListener("input", () => { frame = +scrub.value; setPlaying(false); });
document.addEventListener("keydown", e => { if (e.code === "Space") { e.preventDefault(); setPlaying(!playing); } });
let drag = null;
cv.addEventListener("pointerdown", e => { drag = e.clientX; cv.setPointerCapture(e.pointerId); });
cv.addEventListener("pointermove", e => { if (drag !== null) { yaw += (e.clientX - drag) * 0.01; drag = e.clientX; draw(); } });
cv.addEventListener("pointerup", () => { drag = null; });
cv.addEventListener("dblclick", () => { yaw = YAW0; draw(); });
window.addEventListener("resize", () => { layout(); draw(); });
window.kmmPlayer = {seek: f => { frame = Math.max(0, Math.min(N - 1, f | 0)); setPlaying(false); }, play: () => setPlaying(true),
                    pause: () => setPlaying(false), frames: N, fps: FPS};
layout(); setPlaying(playing); requestAnimationFrame(tick);
</script></body></html>
"""
