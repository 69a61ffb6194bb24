// Atelier's Vary (Region) editor: draw rectangles and lassos over the image, edit the
// prompt, submit. Plain modern JavaScript, no dependencies, no inline code (the page's
// Content-Security-Policy allows only this file). Areas are sent as polygons whose
// corners are fractions (0..1) of the image, from its top-left corner.
"use strict";

(() => {
  const root = document.getElementById("editor");
  if (!root) return;
  const picture = document.getElementById("picture");
  const canvas = document.getElementById("overlay");
  const pen = canvas.getContext("2d");
  const count = document.getElementById("count");
  const form = document.getElementById("form");
  const submit = document.getElementById("submit");
  const status = document.getElementById("status");
  const tools = Array.from(document.querySelectorAll(".tool"));
  // The page's words in its language (a JSON data block: the CSP runs no inline script).
  const words = JSON.parse(document.getElementById("editor-words").textContent);
  const fill = (template, values) =>
    template.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));

  const shapes = []; // each: array of [x, y] fractions
  let tool = "rect";
  let drawing = null; // the shape being drawn: {kind, start, points}

  function fitCanvas() {
    canvas.width = picture.naturalWidth;
    canvas.height = picture.naturalHeight;
    redraw();
  }

  // The pointer's place as fractions of the image, clamped to it.
  function place(event) {
    const box = canvas.getBoundingClientRect();
    const x = (event.clientX - box.left) / box.width;
    const y = (event.clientY - box.top) / box.height;
    return [Math.min(Math.max(x, 0), 1), Math.min(Math.max(y, 0), 1)];
  }

  function rectangle(a, b) {
    const [x0, x1] = [Math.min(a[0], b[0]), Math.max(a[0], b[0])];
    const [y0, y1] = [Math.min(a[1], b[1]), Math.max(a[1], b[1])];
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]];
  }

  function trace(points) {
    pen.beginPath();
    points.forEach(([x, y], i) => {
      const px = x * canvas.width;
      const py = y * canvas.height;
      if (i === 0) pen.moveTo(px, py);
      else pen.lineTo(px, py);
    });
    pen.closePath();
    pen.fill();
    pen.stroke();
  }

  function redraw() {
    pen.clearRect(0, 0, canvas.width, canvas.height);
    pen.fillStyle = "rgba(255, 0, 128, 0.3)";
    pen.strokeStyle = "#ffffff";
    pen.lineWidth = 2;
    pen.setLineDash([]);
    shapes.forEach(trace);
    if (drawing && drawing.points.length > 1) {
      pen.setLineDash([6, 4]);
      pen.strokeStyle = "#ffd400";
      trace(drawing.points);
    }
    const n = shapes.length;
    count.textContent = n === 0 ? words.none : n === 1 ? words.one : fill(words.many, { n });
  }

  function pick(name) {
    tool = name;
    tools.forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.tool === name)));
  }

  // Too small to be meant: under 3 image pixels across.
  function tooSmall(points) {
    const xs = points.map((p) => p[0] * canvas.width);
    const ys = points.map((p) => p[1] * canvas.height);
    return Math.max(...xs) - Math.min(...xs) < 3 || Math.max(...ys) - Math.min(...ys) < 3;
  }

  canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    canvas.setPointerCapture(event.pointerId);
    const start = place(event);
    drawing = { kind: tool, start, points: [start] };
    event.preventDefault();
  });

  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const here = place(event);
    if (drawing.kind === "rect") {
      drawing.points = rectangle(drawing.start, here);
    } else {
      const last = drawing.points[drawing.points.length - 1];
      const dx = (here[0] - last[0]) * canvas.width;
      const dy = (here[1] - last[1]) * canvas.height;
      if (Math.hypot(dx, dy) >= 1) drawing.points.push(here);
    }
    redraw();
  });

  // The distance, in image pixels, from p to the segment a-b.
  function offSegment(p, a, b) {
    const [px, py] = [p[0] * canvas.width, p[1] * canvas.height];
    const [ax, ay] = [a[0] * canvas.width, a[1] * canvas.height];
    const [bx, by] = [b[0] * canvas.width, b[1] * canvas.height];
    const length2 = (bx - ax) ** 2 + (by - ay) ** 2;
    const t = length2 ? Math.max(0, Math.min(1, ((px - ax) * (bx - ax) + (py - ay) * (by - ay)) / length2)) : 0;
    return Math.hypot(px - (ax + t * (bx - ax)), py - (ay + t * (by - ay)));
  }

  // Ramer-Douglas-Peucker: the stroke's corners, dropping points within `tolerance`
  // pixels of the line through their neighbours (a drawn line has hundreds).
  function simplify(points, tolerance) {
    if (points.length < 3) return points;
    const last = points.length - 1;
    let worst = 0;
    let at = 0;
    for (let i = 1; i < last; i += 1) {
      const d = offSegment(points[i], points[0], points[last]);
      if (d > worst) [worst, at] = [d, i];
    }
    if (worst <= tolerance) return [points[0], points[last]];
    const left = simplify(points.slice(0, at + 1), tolerance);
    return left.slice(0, -1).concat(simplify(points.slice(at), tolerance));
  }

  // The bot takes at most this many corners per area: loosen until the stroke fits.
  const MOST_POINTS = 200;
  function corners(points) {
    let tolerance = 0.5;
    let out = simplify(points, tolerance);
    while (out.length > MOST_POINTS) {
      tolerance *= 1.5;
      out = simplify(points, tolerance);
    }
    return out;
  }

  function finish(event) {
    if (!drawing) return;
    if (drawing.kind === "rect") drawing.points = rectangle(drawing.start, place(event));
    else drawing.points = corners(drawing.points.concat([place(event)]));
    const done = drawing;
    drawing = null;
    if (done.points.length >= 3 && !tooSmall(done.points)) shapes.push(done.points);
    redraw();
  }
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", () => {
    drawing = null;
    redraw();
  });

  tools.forEach((b) => b.addEventListener("click", () => pick(b.dataset.tool)));
  document.getElementById("undo").addEventListener("click", () => {
    shapes.pop();
    redraw();
  });
  document.getElementById("clear").addEventListener("click", () => {
    shapes.length = 0;
    redraw();
  });

  function say(text, link) {
    status.replaceChildren(document.createTextNode(text));
    if (link) {
      const a = document.createElement("a");
      a.href = link;
      a.id = "result-link";
      a.textContent = link;
      status.append(" ", a);
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (shapes.length === 0) {
      say(words.draw_first);
      return;
    }
    submit.disabled = true;
    say(words.starting);
    try {
      const answer = await fetch(root.dataset.submit, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-Atelier-CSRF": root.dataset.csrf },
        body: JSON.stringify({ prompt: document.getElementById("prompt").value, shapes }),
      });
      const body = await answer.json();
      if (answer.ok) {
        status.dataset.job = body.job_id;
        say(body.message, body.link);
        return; // a link works once: Submit stays off
      }
      say(body.error || fill(words.answered, { status: answer.status }));
    } catch (err) {
      say(fill(words.unreachable, { error: String(err) }));
    }
    submit.disabled = false;
  });

  if (picture.complete && picture.naturalWidth) fitCanvas();
  else picture.addEventListener("load", fitCanvas);
})();
