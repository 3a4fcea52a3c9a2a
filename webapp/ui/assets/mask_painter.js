// Paint the area of a picture to change. The strokes are drawn over the picture, and each
// finished stroke sends a black-and-white mask (white = change) at the picture's own size.

function build(parentElement, data, setStateValue) {
  const root = document.createElement("div");
  root.className = "painter";
  root.dataset.picture = data.picture_id;
  root.innerHTML = `
    <div class="stage">
      <img class="picture" alt="The picture to change" draggable="false">
      <canvas class="strokes" aria-label="Paint here the area to change"></canvas>
    </div>
    <div class="tools">
      <label>Brush <input class="size" type="range" min="1" max="30" value="8"></label>
      <button class="undo" type="button">Undo</button>
      <button class="clear" type="button">Clear</button>
      <span class="hint">Paint over what should change.</span>
    </div>`;
  parentElement.appendChild(root);

  const picture = root.querySelector(".picture");
  const canvas = root.querySelector(".strokes");
  const size = root.querySelector(".size");
  picture.src = data.preview;
  canvas.width = data.width;
  canvas.height = data.height;

  const strokes = [];
  let current = null;

  // The brush slider is a percentage of the picture's shorter side.
  const brushPixels = () => (Number(size.value) / 100) * Math.min(data.width, data.height);

  const pointOf = (event) => {
    const box = canvas.getBoundingClientRect();
    return [
      ((event.clientX - box.left) / box.width) * data.width,
      ((event.clientY - box.top) / box.height) * data.height,
    ];
  };

  const drawStroke = (context, stroke, colour) => {
    context.strokeStyle = colour;
    context.fillStyle = colour;
    context.lineWidth = stroke.width;
    context.lineCap = "round";
    context.lineJoin = "round";
    const [first, ...rest] = stroke.points;
    context.beginPath();
    context.arc(first[0], first[1], stroke.width / 2, 0, 2 * Math.PI);
    context.fill();
    if (rest.length) {
      context.beginPath();
      context.moveTo(first[0], first[1]);
      for (const [x, y] of rest) context.lineTo(x, y);
      context.stroke();
    }
  };

  const redraw = () => {
    const context = canvas.getContext("2d");
    context.clearRect(0, 0, canvas.width, canvas.height);
    for (const stroke of strokes) drawStroke(context, stroke, "#e0464a");
    if (current) drawStroke(context, current, "#e0464a");
  };

  const sendMask = () => {
    if (!strokes.length) {
      setStateValue("mask", null);
      return;
    }
    const mask = document.createElement("canvas");
    mask.width = data.width;
    mask.height = data.height;
    const context = mask.getContext("2d");
    context.fillStyle = "#000";
    context.fillRect(0, 0, mask.width, mask.height);
    for (const stroke of strokes) drawStroke(context, stroke, "#fff");
    setStateValue("mask", mask.toDataURL("image/png"));
  };

  canvas.addEventListener("pointerdown", (event) => {
    canvas.setPointerCapture(event.pointerId);
    current = { width: brushPixels(), points: [pointOf(event)] };
    redraw();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!current) return;
    current.points.push(pointOf(event));
    redraw();
  });
  const endStroke = () => {
    if (!current) return;
    strokes.push(current);
    current = null;
    redraw();
    sendMask();
  };
  canvas.addEventListener("pointerup", endStroke);
  canvas.addEventListener("pointercancel", endStroke);

  root.querySelector(".undo").addEventListener("click", () => {
    strokes.pop();
    redraw();
    sendMask();
  });
  root.querySelector(".clear").addEventListener("click", () => {
    strokes.length = 0;
    redraw();
    sendMask();
  });
}

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  const existing = parentElement.querySelector(".painter");
  // Reruns mount the same painter again: keep its strokes unless the picture changed.
  if (existing && existing.dataset.picture === data.picture_id) return;
  if (existing) existing.remove();
  build(parentElement, data, setStateValue);
}
