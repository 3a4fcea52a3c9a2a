// Bring an element of the page into view once per token: where a result or a streamed
// answer appears, so the person sees it without looking for it.

const shown = new WeakMap(); // the component's root (a shadow root) -> the token it acted on
const CLEAR_OF_HEADER = 80; // pixels kept free at the top for the app's header

function scrollingParent(element) {
  for (let node = element.parentElement; node; node = node.parentElement) {
    const overflow = getComputedStyle(node).overflowY;
    if ((overflow === "auto" || overflow === "scroll") && node.scrollHeight > node.clientHeight) {
      return node;
    }
  }
  return document.scrollingElement;
}

function bringIntoView(target, block) {
  const parent = scrollingParent(target);
  const box = target.getBoundingClientRect();
  const frame = parent === document.scrollingElement
    ? { top: 0, bottom: window.innerHeight }
    : parent.getBoundingClientRect();
  const above = box.top - (frame.top + CLEAR_OF_HEADER); // < 0: its top is hidden
  const below = box.bottom - frame.bottom; // > 0: its bottom is hidden
  let by = 0;
  if (block === "start" || above < 0) {
    by = above;
  } else if (below > 0) {
    by = Math.min(below, above); // as far as needed, never past its top
  }
  if (Math.abs(by) > 1) parent.scrollBy({ top: by, behavior: "smooth" });
}

export default function (component) {
  const { data, parentElement } = component;
  if (shown.get(parentElement) === data.token) return; // reruns draw it again
  shown.set(parentElement, data.token);
  let tries = 0;
  const bring = () => {
    const target = document.querySelector("." + CSS.escape(data.target));
    if (target) {
      bringIntoView(target, data.block);
    } else if (++tries < 40) {
      setTimeout(bring, 50); // drawn a moment later than this component
    }
  };
  requestAnimationFrame(() => requestAnimationFrame(bring)); // after the page is laid out
}
