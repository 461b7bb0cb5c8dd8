/**
 * The page's few ways of showing something: the status line (the one live region for what
 * happened), the connection log (a history, not announced: what it repeats was announced in the
 * status), the "who am I" list, and where keyboard focus goes when its control disappears.
 */

export const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

export type Tone = "good" | "bad" | "warn" | "";

const status = $<HTMLParagraphElement>("status");
const log = $<HTMLOListElement>("log");
const heard = $<HTMLParagraphElement>("heard");

/** The status line. The same words twice are not a change, so a screen reader says them once. */
export function say(text: string, tone: Tone = ""): void {
  if (status.textContent !== text) status.textContent = text;
  status.className = tone;
}

export function note(text: string, tone: Tone | "in" = ""): void {
  const item = document.createElement("li");
  item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  if (tone !== "") item.className = tone;
  log.append(item);
  log.scrollTop = log.scrollHeight;
}

/** A message from the server: into the log, and announced once (the log itself is not live). */
export function noteReceived(text: string): void {
  note(`← ${text}`, "in");
  heard.textContent = `Received: ${text}`;
}

export function showRows(list: HTMLDListElement, rows: ReadonlyArray<readonly [string, string]>): void {
  list.replaceChildren(
    ...rows.flatMap(([term, value]) => {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = value;
      return [dt, dd];
    }),
  );
}

/** Whether an element is rendered: not in a hidden section, nor in a folded `<details>` (which keeps a layout box). */
function shown(element: HTMLElement): boolean {
  return element.offsetParent !== null && (typeof element.checkVisibility !== "function" || element.checkVisibility());
}

/** A control that just disabled or hid itself drops keyboard focus to the page: hand it to the next step. */
export function rescueFocus(next: HTMLElement): void {
  const active = document.activeElement;
  const lost =
    active === null ||
    active === document.body ||
    ((active instanceof HTMLButtonElement || active instanceof HTMLInputElement) && (active.disabled || !shown(active)));
  if (lost) next.focus();
}

/** Turns on the controls a form starts with disabled (they wait for the script's handlers). */
export function enableForm(id: string): void {
  for (const control of $<HTMLFormElement>(id).querySelectorAll<HTMLInputElement | HTMLButtonElement>("input, button"))
    control.disabled = false;
}

/** A submit handler that never lets the browser submit the form itself. */
export function onSubmit(id: string, handle: () => void): void {
  $<HTMLFormElement>(id).addEventListener("submit", (event) => {
    event.preventDefault();
    handle();
  });
}
