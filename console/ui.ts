/**
 * Building blocks of the admin pages: elements made with text (never HTML strings, so nothing a
 * key's name holds can become markup), lists of cards that read well at phone width, times in
 * words, and one confirmation dialog for what cannot be undone.
 */
import { $ } from "./dom.ts";

type Child = Node | string | undefined | false;

/** An element with attributes and children; text children are text nodes, never parsed. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | boolean> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false) continue;
    element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) if (child !== undefined && child !== false) element.append(child);
  return element;
}

/**
 * A button that runs `action` once per click; a second tap while it runs does nothing, so a double
 * tap is one request. It stays focusable meanwhile (aria-disabled, not disabled): a confirmation
 * dialog hands focus back to it. When the list is redrawn without it, focus goes to its page's
 * heading rather than falling off the page.
 */
export function actionButton(
  label: string,
  testid: string,
  action: () => Promise<void>,
  extra: Record<string, string> = {},
): HTMLButtonElement {
  const button = el("button", { type: "button", "data-testid": testid, ...extra }, label);
  button.addEventListener("click", async () => {
    if (button.getAttribute("aria-disabled") === "true") return;
    const heading = button.closest(".view")?.querySelector<HTMLElement>("h2");
    button.setAttribute("aria-disabled", "true");
    try {
      await action();
    } finally {
      button.removeAttribute("aria-disabled");
      const lost = document.activeElement === null || document.activeElement === document.body;
      if (lost && !button.isConnected) heading?.focus();
    }
  });
  return button;
}

/**
 * Copies an element's text to the clipboard; where the browser does not allow it (no clipboard
 * outside a secure context, such as http://192.168.…) the text is selected for Ctrl+C instead.
 */
export async function copyOrSelect(element: HTMLElement): Promise<boolean> {
  const copied = await navigator.clipboard?.writeText(element.textContent ?? "").then(
    () => true,
    () => false,
  );
  if (copied !== true) getSelection()?.selectAllChildren(element);
  return copied === true;
}

/** Term/value rows, the values as text. */
export function facts(rows: ReadonlyArray<readonly [string, string]>): HTMLDListElement {
  return el("dl", {}, ...rows.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
}

/** One card per item, or a plain sentence when there are none. */
export function fillList<T>(list: HTMLElement, items: readonly T[], card: (item: T) => HTMLElement, none: string): void {
  if (items.length === 0) {
    list.replaceChildren(el("li", { class: "empty" }, none));
    return;
  }
  list.replaceChildren(...items.map((item) => el("li", { class: "card" }, card(item))));
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** "3 minutes", "2 hours", "5 days": a span in the largest whole unit. */
export function spanInWords(ms: number): string {
  const [size, unit] =
    ms >= 2 * DAY ? [DAY, "day"] : ms >= 2 * HOUR ? [HOUR, "hour"] : ms >= 2 * MINUTE ? [MINUTE, "minute"] : [1000, "second"];
  const count = Math.max(1, Math.round(ms / size));
  return `${count} ${unit}${count === 1 ? "" : "s"}`;
}

export const dateInWords = (iso: string) => new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });

/** "5 minutes ago", "in 2 days", with the date for anything further than a week. */
export function whenInWords(iso: string | null, never = "never"): string {
  if (iso === null) return never;
  const delta = new Date(iso).getTime() - Date.now();
  if (!Number.isFinite(delta)) return never;
  if (Math.abs(delta) > 7 * DAY) return dateInWords(iso);
  if (Math.abs(delta) < 30_000) return "just now";
  return delta > 0 ? `in ${spanInWords(delta)}` : `${spanInWords(-delta)} ago`;
}

/** Whether a time lies within `ms` from now (and not past). */
export const endsWithin = (iso: string | null, ms: number) => {
  if (iso === null) return false;
  const delta = new Date(iso).getTime() - Date.now();
  return delta > 0 && delta <= ms;
};

export const SEVEN_DAYS = 7 * DAY;

const dialog = $<HTMLDialogElement>("confirm-dialog");

/**
 * Asks before something that cannot be undone. A modal `<dialog>`: focus moves into it, Escape
 * cancels, and focus returns to the control that asked when it closes.
 */
export function confirmAction(question: string, yes: string): Promise<boolean> {
  $<HTMLParagraphElement>("confirm-question").textContent = question;
  $<HTMLButtonElement>("confirm-yes").textContent = yes;
  dialog.returnValue = "";
  dialog.showModal();
  // The safe answer has focus: Enter on a slip keeps things as they are.
  $<HTMLButtonElement>("confirm-no").focus();
  return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true }));
}
