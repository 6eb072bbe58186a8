// A small line chart on a canvas: a handful of series over time, no library needed.
"use strict";

function drawChart(canvas, series, spanSeconds) {
  const ratio = window.devicePixelRatio || 1;
  const cssWidth = canvas.clientWidth || canvas.width;
  const cssHeight = canvas.clientHeight || canvas.height;
  canvas.width = cssWidth * ratio;
  canvas.height = cssHeight * ratio;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, cssWidth, cssHeight);
  const pad = { left: 44, right: 12, top: 10, bottom: 24 };
  const w = cssWidth - pad.left - pad.right;
  const h = cssHeight - pad.top - pad.bottom;
  const now = Date.now() / 1000;
  const start = now - spanSeconds;
  let top = 4; // at least 0..4, so that every tick is a whole number
  for (const s of series) for (const [, y] of s.points) top = Math.max(top, y);
  const tick = niceCeiling(top / 4);
  top = tick * 4;
  const x = (t) => pad.left + ((t - start) / spanSeconds) * w;
  const y = (v) => pad.top + h - (v / top) * h;

  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#6b7280";
  ctx.strokeStyle = "#e5e7eb";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = tick * i;
    ctx.beginPath();
    ctx.moveTo(pad.left, y(v));
    ctx.lineTo(pad.left + w, y(v));
    ctx.stroke();
    ctx.fillText(String(Math.round(v)), 6, y(v) + 4);
  }
  for (let m = 0; m <= spanSeconds / 60; m++) {
    const t = now - m * 60;
    ctx.fillText(m === 0 ? "now" : `-${m} min`, x(t) - 14, cssHeight - 6);
  }
  let drawn = 0;
  for (const s of series) {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    let first = true;
    for (const [t, v] of s.points) {
      if (t < start) continue;
      if (first) ctx.moveTo(x(t), y(v)); else ctx.lineTo(x(t), y(v));
      first = false;
      drawn++;
    }
    ctx.stroke();
  }
  canvas.dataset.points = String(drawn);
  return drawn;
}

function niceCeiling(v) {
  const steps = [1, 2, 5, 10];
  const scale = Math.pow(10, Math.floor(Math.log10(v)));
  for (const s of steps) if (s * scale >= v) return s * scale;
  return 10 * scale;
}
