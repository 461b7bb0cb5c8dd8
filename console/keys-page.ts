/**
 * Devices & keys: every API key with what it may do, when it ends and when and from where it was
 * last used; a form that makes a key for a new device; Revoke and Replace on each. A new key's
 * secret is shown once, with Copy and a QR code a device's camera can take, and leaves the page
 * when the person says Done or goes to another page.
 */
import { admin, bodyOr, isProblem, type KeyView } from "./admin-api.ts";
import { $, say } from "./dom.ts";
import { drawQr } from "./qr.ts";
import { actionButton, confirmAction, copyOrSelect, el, endsWithin, facts, fillList, SEVEN_DAYS, whenInWords } from "./ui.ts";
import type { View } from "./views.ts";

const form = $<HTMLFormElement>("key-form");
const reveal = $<HTMLElement>("key-reveal");
const secretOutput = $<HTMLOutputElement>("new-key");

/** Set by the console: the id of the key the page is signed in with, if it is one. */
export interface KeysPageContext {
  readonly ownKeyId: () => string | undefined;
  /** The page's own key was revoked or replaced by this page: it signs out. */
  readonly ownKeyEnded: () => void;
}

function stateInWords(key: KeyView): { text: string; tone: string } {
  if (key.state === "revoked") return { text: `Revoked ${whenInWords(key.revoked_at)}`, tone: "muted" };
  if (key.state === "expired") return { text: `Expired ${whenInWords(key.expires_at)}`, tone: "muted" };
  if (key.revoked_at !== null) return { text: `Replaced; stops working ${whenInWords(key.revoked_at)}`, tone: "warn" };
  if (endsWithin(key.expires_at, SEVEN_DAYS)) return { text: `Expires ${whenInWords(key.expires_at)}`, tone: "warn" };
  return { text: "Active", tone: "good" };
}

function lastUse(key: KeyView): string {
  if (key.last_used_at === null) return "never";
  return `${whenInWords(key.last_used_at)}${key.last_used_addr === null ? "" : ` from ${key.last_used_addr}`}`;
}

function scopesInWords(scopes: readonly string[]): string {
  return scopes.includes("*") ? "everything (*)" : scopes.join(", ");
}

/** Shows a new key's secret once, with its QR code; focus goes to Copy. */
function showSecret(name: string, secret: string): void {
  $<HTMLElement>("key-reveal-title").textContent = `Key for ${name}`;
  secretOutput.textContent = secret;
  $<HTMLElement>("new-key-qr").replaceChildren(drawQr(secret, `QR code of the key for ${name}`));
  reveal.hidden = false;
  $<HTMLButtonElement>("copy-new-key").focus();
}

export function hideSecret(): void {
  secretOutput.textContent = "";
  $<HTMLElement>("new-key-qr").replaceChildren();
  reveal.hidden = true;
}

async function copySecret(): Promise<void> {
  if (await copyOrSelect(secretOutput)) return say("Key copied. Press Done once the device has it: it is not shown again.", "good");
  say("This browser did not allow copying: the key is selected, copy it with Ctrl+C (or ⌘C).", "warn");
}

/** The form's scope choices: what the gate knows of, the two a device usually needs ticked. */
function scopeChoice(scope: string): HTMLElement {
  const checked = scope === "data:read" || scope === "ws:connect";
  const box = el("input", { type: "checkbox", name: "scope", value: scope, id: `scope-${scope}`, checked });
  return el("label", { class: "choice", for: `scope-${scope}` }, box, scope === "*" ? "everything (*, an admin key)" : scope);
}

/** What the form asks for, or the sentence saying what is missing. */
function readKeyForm(): { name: string; scopes: string[]; expires?: string } | string {
  const data = new FormData(form);
  const name = String(data.get("name") ?? "").trim();
  const scopes = data.getAll("scope").map(String);
  if (name === "") return "Give the key a name: the device it is for.";
  if (scopes.length === 0) return "Choose at least one thing the key may do.";
  const expires = String(data.get("expires") ?? "never");
  return expires === "never" ? { name, scopes } : { name, scopes, expires };
}

export class KeysPage implements View {
  private scopesShown = false;

  constructor(private readonly context: KeysPageContext) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.create();
    });
    $<HTMLButtonElement>("copy-new-key").addEventListener("click", () => void copySecret());
    $<HTMLButtonElement>("hide-new-key").addEventListener("click", () => {
      hideSecret();
      say("The key is no longer shown.");
      $<HTMLInputElement>("key-name").focus();
    });
  }

  async load(): Promise<void> {
    void this.showScopes();
    const answer = bodyOr(await admin.keys());
    if (isProblem(answer)) return say(answer.problem, "bad");
    const inUse = answer.keys.filter((key) => key.state === "active");
    const gone = answer.keys.filter((key) => key.state !== "active");
    const card = (key: KeyView) => this.keyCard(key);
    fillList($<HTMLUListElement>("keys-active"), inUse, card, "No key is in use. Make one above for each device.");
    fillList($<HTMLUListElement>("keys-ended"), gone, card, "None.");
    $<HTMLElement>("keys-ended-count").textContent = String(gone.length);
  }

  leave(): void {
    hideSecret();
  }

  private async create(): Promise<void> {
    const asked = readKeyForm();
    if (typeof asked === "string") return say(asked, "bad");
    const answer = bodyOr(await admin.createKey(asked));
    if (isProblem(answer)) return say(answer.problem, "bad");
    form.reset();
    this.scopesShown = false;
    await this.load();
    showSecret(answer.key.name, answer.secret);
    say(`Key for "${answer.key.name}" made. Copy it or scan its QR code now: it is shown only once.`, "good");
  }

  private async revoke(key: KeyView): Promise<void> {
    const own = key.id === this.context.ownKeyId();
    const question = own
      ? `Revoke "${key.name}"? It is the key you are signed in with: this page signs out.`
      : `Revoke "${key.name}"? Every device using it is cut off at once.`;
    if (!(await confirmAction(question, "Revoke"))) return;
    const answer = bodyOr(await admin.revokeKey(key.id, own));
    if (isProblem(answer)) return say(answer.problem, "bad");
    if (own) return this.context.ownKeyEnded();
    say(`Revoked "${key.name}". Its connections are closed.`, "good");
    await this.load();
  }

  private async rotate(key: KeyView): Promise<void> {
    const own = key.id === this.context.ownKeyId();
    const question = `Replace "${key.name}" with a new key? The old one keeps working for one hour, so the device can be given the new one.`;
    if (!(await confirmAction(question, "Replace"))) return;
    const answer = bodyOr(await admin.rotateKey(key.id, own));
    if (isProblem(answer)) return say(answer.problem, "bad");
    await this.load();
    showSecret(answer.key.name, answer.secret);
    say(`New key for "${key.name}" made; the old one stops in one hour.`, "good");
  }

  private keyCard(key: KeyView): HTMLElement {
    const state = stateInWords(key);
    const actions =
      key.state === "active" &&
      el(
        "div",
        { class: "row" },
        actionButton("Revoke", `revoke-${key.id}`, () => this.revoke(key), { "aria-label": `Revoke ${key.name}` }),
        key.revoked_at === null &&
          actionButton("Replace", `rotate-${key.id}`, () => this.rotate(key), { "aria-label": `Replace ${key.name} with a new key` }),
      );
    return el(
      "article",
      { "aria-labelledby": `key-${key.id}`, "data-testid": `key-${key.id}` },
      el("h4", { id: `key-${key.id}` }, key.name, " ", el("span", { class: `badge ${state.tone}` }, state.text)),
      facts([
        ["Id", key.id],
        ["May", scopesInWords(key.scopes)],
        ["Last used", lastUse(key)],
        ["Expires", whenInWords(key.expires_at)],
      ]),
      actions,
    );
  }

  private async showScopes(): Promise<void> {
    if (this.scopesShown) return;
    const answer = bodyOr(await admin.scopes());
    if (isProblem(answer)) return;
    $<HTMLElement>("key-scopes").replaceChildren(...answer.scopes.map(scopeChoice));
    this.scopesShown = true;
  }
}
