/**
 * The device view (`/auth/device`, RFC 8628's verification page): a device without a keyboard
 * showed a code; here a signed-in person enters it (or arrives with it in the address, from the
 * device's QR code), sees which device asks, from where and for what, may untick scopes, and
 * approves or denies. Not signed in: the sign-in page first, then back here. A QR code of this
 * page's address lets a second phone take over.
 */
import { $, enableForm, onSubmit, rescueFocus, say, showRows } from "./dom.ts";
import { drawQr } from "./qr.ts";
import { postJson, whoami } from "./requests.ts";
import { el, whenInWords } from "./ui.ts";
import { explainSignIn, waitFor, type Refusal } from "./words.ts";

/** Whether this page is the device view. */
export const DEVICE_VIEW = location.pathname === "/auth/device";

type DeviceLogin = {
  user_code: string;
  client_id: string;
  scopes: string[];
  grantable: string[];
  credential: "tokens" | "key" | null;
  approvable: boolean;
  requested_from: string;
  requested_at: string | null;
  expires_at: string | null;
  verification_uri_complete: string;
};

const UNREACHABLE = "The gate cannot be reached. Check the network and try again.";
const codeInput = $<HTMLInputElement>("device-code");
const request = $<HTMLElement>("device-request");
const approveButton = $<HTMLButtonElement>("device-approve");
const denyButton = $<HTMLButtonElement>("device-deny");

/** The login on screen: its code as the person entered it, and what the gate said of it. */
let shown: DeviceLogin | undefined;

function explainDeviceRefusal(refusal: Refusal): string {
  if (refusal.code === "too_many_requests") return `Too many wrong codes from this device. Try again ${waitFor(refusal.retryAfter)}.`;
  if (
    refusal.code === "invalid_grant" ||
    refusal.code === "invalid_scope" ||
    refusal.code === "access_denied" ||
    refusal.code === "conflict"
  )
    return refusal.description.endsWith(".") ? refusal.description : `${refusal.description}.`;
  return explainSignIn(refusal);
}

function receivesInWords(credential: DeviceLogin["credential"]): string {
  if (credential === "key") return "an API key of its own, named after it";
  return "access as you, limited to what you tick below";
}

function scopeChoice(scope: string, grantable: boolean): HTMLElement {
  const id = `device-scope-${scope}`;
  const box = el("input", { type: "checkbox", name: "scope", value: scope, id, checked: grantable, disabled: !grantable });
  return el("label", { class: "choice", for: id }, box, grantable ? scope : `${scope} (you do not have this)`);
}

function showLogin(login: DeviceLogin): void {
  shown = login;
  $<HTMLElement>("device-request-title").textContent = `"${login.client_id}" asks to sign in`;
  showRows($<HTMLDListElement>("device-facts"), [
    ["Device", login.client_id],
    ["Asked from", login.requested_from],
    ["Asked", whenInWords(login.requested_at)],
    ["Code expires", whenInWords(login.expires_at)],
    ["It receives", receivesInWords(login.credential)],
  ]);
  $<HTMLElement>("device-scopes").replaceChildren(...login.scopes.map((scope) => scopeChoice(scope, login.grantable.includes(scope))));
  const note = $<HTMLParagraphElement>("device-note");
  note.hidden = login.approvable;
  note.textContent = login.approvable
    ? ""
    : "This device receives a person's access: sign in with your own account, not a key, to approve it.";
  approveButton.disabled = !login.approvable || login.grantable.length === 0;
  $<HTMLElement>("device-qr").replaceChildren(drawQr(login.verification_uri_complete, "QR code of this page's address with the code"));
  request.hidden = false;
  say("Check what the device asks for, then approve or deny.");
  $<HTMLElement>("device-request-title").focus();
}

async function lookUp(code: string): Promise<void> {
  request.hidden = true;
  say("Looking up the code…");
  const answer = await postJson<DeviceLogin>("/auth/device/lookup", { user_code: code });
  if (answer === undefined) return say(UNREACHABLE, "bad");
  if (!answer.ok) {
    say(explainDeviceRefusal(answer.refusal), "bad");
    return codeInput.focus();
  }
  showLogin(answer.body);
}

/** Sends the decision; a second tap while it is on its way sends nothing. */
async function sendDecision(login: DeviceLogin, approve: boolean, scopes: string[]) {
  const path = approve ? "/auth/device/approve" : "/auth/device/deny";
  shown = undefined;
  try {
    return await postJson<{ client_id: string }>(path, approve ? { user_code: login.user_code, scopes } : { user_code: login.user_code });
  } finally {
    shown = login;
  }
}

/** Approve or deny the login on screen; once decided, it leaves the screen. */
async function decide(approve: boolean): Promise<void> {
  const login = shown;
  if (login === undefined) return;
  const scopes = [...document.querySelectorAll<HTMLInputElement>("#device-scopes input:checked")].map((box) => box.value);
  if (approve && scopes.length === 0) return say("Tick at least one thing the device may do, or deny it.", "bad");
  const answer = await sendDecision(login, approve, scopes);
  if (answer === undefined) return say(UNREACHABLE, "bad");
  if (!answer.ok) return say(explainDeviceRefusal(answer.refusal), "bad");
  shown = undefined;
  request.hidden = true;
  codeInput.value = "";
  const name = answer.body.client_id;
  say(approve ? `Approved. "${name}" is signing in now; you can close this page.` : `Denied. "${name}" was not let in.`, "good");
  rescueFocus(codeInput);
}

/** Signed in: the code from the address, if any, is looked up at once. Not signed in: the sign-in page, then back. */
async function start(): Promise<void> {
  const me = await whoami();
  if (me === undefined) return say(UNREACHABLE, "bad");
  if (!me.ok && me.refusal.status === 401) {
    location.replace(`/auth/login?rd=${encodeURIComponent(location.pathname + location.search)}`);
    return;
  }
  if (!me.ok) return say(explainSignIn(me.refusal), "bad");
  say(`Signed in as ${me.body.name}.`);
  const code = new URLSearchParams(location.search).get("user_code");
  if (code === null || code.trim() === "") return codeInput.focus();
  codeInput.value = code;
  await lookUp(code);
}

export function openDevicePage(): void {
  document.title = "Connect a device · tokengate";
  document.body.classList.add("login-view");
  $<HTMLElement>("title").textContent = "Connect a device";
  $<HTMLElement>("signin").hidden = true;
  $<HTMLElement>("view-device").hidden = false;
  enableForm("device-code-form");
  onSubmit("device-code-form", () => {
    const code = codeInput.value.trim();
    if (code === "") return say("Enter the code the device shows.", "bad");
    void lookUp(code);
  });
  onSubmit("device-form", () => void decide(true));
  denyButton.addEventListener("click", () => void decide(false));
  void start();
}
