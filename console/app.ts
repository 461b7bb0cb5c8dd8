/**
 * The console page, and at `/auth/login` the sign-in view a protected address sends a browser to.
 *
 * Signing in with a password, an API key or a passkey opens a browser session: the gate sets an
 * HttpOnly cookie this script never sees, so a reload keeps you signed in and Sign out ends it on
 * the server. A token that cannot open a session (the bootstrap token, an access token) is kept in
 * this page's memory instead, as before, and the page says so. The WebSocket rides on the cookie,
 * or on the in-memory token in the subprotocol; never in a URL. Every refusal and close is told
 * in plain words, and what the page shows follows the server's answers.
 */
import { checkToken, explainRefusal, TokengateClient, type ClientEvent } from "../client/tokengate.ts";
import { $, enableForm, note, noteReceived, onSubmit, rescueFocus, say, showRows, type Tone } from "./dom.ts";
import { DEVICE_VIEW, openDevicePage } from "./device-page.ts";
import { addPasskey, passkeysPossible, signInWithPasskey, type Outcome } from "./passkeys.ts";
import { createPages, hideSecret, isAdmin } from "./pages.ts";
import { copyOrSelect } from "./ui.ts";
import * as gate from "./requests.ts";
import { explainErrorParameter, explainPasskeyRefusal, explainSignIn } from "./words.ts";

const LOGIN_VIEW = location.pathname === "/auth/login";
/** Where the gate sends the browser after a sign-in here (it checks the target itself). */
const target = LOGIN_VIEW ? (new URLSearchParams(location.search).get("rd") ?? "") : "";
const UNREACHABLE = "The gate cannot be reached. Check the network and try again.";

const who = $<HTMLDListElement>("who");
const connectButton = $<HTMLButtonElement>("connect");
const disconnectButton = $<HTMLButtonElement>("disconnect");
const sendButton = $<HTMLButtonElement>("send");
const messageInput = $<HTMLInputElement>("message");
const signOutButton = $<HTMLButtonElement>("sign-out");
const signOutEverywhere = $<HTMLButtonElement>("sign-out-everywhere");
const passkeyAddButton = $<HTMLButtonElement>("passkey-add");
const passkeyAddForm = $<HTMLFormElement>("passkey-add-form");
const passkeyPassword = $<HTMLInputElement>("passkey-password");
const usernameInput = $<HTMLInputElement>("username");
const passwordInput = $<HTMLInputElement>("password");
const tokenInput = $<HTMLInputElement>("token");
const signInWays = $<HTMLDetailsElement>("signin-ways");

/** Who the page acts as: the browser session (the cookie), or a token held in this page's memory. */
type Identity =
  | { readonly via: "cookie"; readonly principal: gate.Principal }
  | { readonly via: "memory"; readonly token: string; readonly principal: gate.Principal };

let identity: Identity | undefined;
let client: TokengateClient | undefined;
let stopListening: (() => void) | undefined;
let socketOpen = false;

/** Buttons follow the state: nothing to do before sign-in, Send only on an open socket. */
function updateControls(): void {
  const signedIn = identity !== undefined;
  signOutButton.disabled = !signedIn;
  signOutEverywhere.hidden = identity?.via !== "cookie";
  passkeyAddButton.hidden = !(identity?.via === "cookie" && identity.principal.kind === "user" && passkeysPossible());
  if (passkeyAddButton.hidden) passkeyAddForm.hidden = true;
  connectButton.disabled = !signedIn || client !== undefined;
  disconnectButton.disabled = client === undefined;
  sendButton.disabled = !socketOpen;
  messageInput.disabled = !socketOpen;
}

const when = (iso: string) => new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });

function describe(principal: gate.Principal): Array<[string, string]> {
  return [
    ["Signed in as", `${principal.name} (${principal.kind})`],
    ["Id", principal.id],
    ["Scopes", principal.scopes.join(" ") || "none"],
  ];
}

/** A browser session ends at its own expiry or the credential's, whichever comes first (the gate's whoami gives the sooner). */
function describeSession(principal: gate.Principal, sessionEnds: string | undefined): Array<[string, string]> {
  const ends = [sessionEnds, principal.expires_at ?? undefined].filter((at) => at !== undefined).sort()[0];
  return [...describe(principal), ["Session", `This browser, until you sign out${ends === undefined ? "" : ` or ${when(ends)}`}`]];
}

/** A token in memory: it works until it expires, and only in this page. */
function describeToken(principal: gate.Principal): Array<[string, string]> {
  return [
    ...describe(principal),
    ["Expires", principal.expires_at === null ? "never" : when(principal.expires_at)],
    ["Session", "This page only: this token cannot open a browser session, so a reload signs you out"],
  ];
}

/** Closes the socket without a word in the log: the caller says what happened and why. */
function dropSocket(): void {
  stopListening?.();
  stopListening = undefined;
  client?.close();
  client = undefined;
  socketOpen = false;
}

/** The one-time key leaves the page once it is stored (copied) or no longer the one in use. */
function hidePairedKey(): void {
  $<HTMLOutputElement>("paired-key").textContent = "";
  $<HTMLElement>("paired").hidden = true;
  // Once its key was shown, pairing is over: the section has nothing left to say.
  if ($<HTMLFormElement>("pair-form").hidden) $<HTMLElement>("pairing").hidden = true;
}

/** Signed in at the console: the ways to sign in fold under "Sign in as someone else"; signed out, they open. */
function foldSignIn(folded: boolean): void {
  if (LOGIN_VIEW) return;
  $<HTMLElement>("switch-user").hidden = !folded;
  $<HTMLElement>("signin-title").hidden = folded;
  signInWays.open = !folded;
}

function clearSecrets(): void {
  tokenInput.value = "";
  passwordInput.value = "";
}

/** Back to "nobody": no token in memory, no socket, no identity on screen. */
function endSession(message: string, tone: Tone): void {
  dropSocket();
  identity = undefined;
  gate.useBearer(undefined);
  hideSecret();
  pages?.setAccess(false, false);
  hidePairedKey();
  clearSecrets();
  showRows(who, [["Signed in as", "nobody"]]);
  foldSignIn(false);
  updateControls();
  say(message, tone);
}

function showSignedIn(next: Identity, rows: Array<[string, string]>, paired: boolean, message: string, tone: Tone): void {
  identity = next;
  // The admin pages' requests carry a token held in memory; with a session the cookie goes by itself.
  gate.useBearer(next.via === "memory" ? next.token : undefined);
  if (!paired) hidePairedKey();
  // Nothing secret is left in a field for anyone at the screen to reveal.
  clearSecrets();
  showRows(who, rows);
  foldSignIn(true);
  updateControls();
  say(message, tone);
  pages?.setAccess(true, isAdmin(next.principal.scopes));
}

/** The control that signed in has just folded away: focus goes on to the next step. */
function focusNextStep(paired: boolean): void {
  const adminView = identity !== undefined && isAdmin(identity.principal.scopes);
  rescueFocus(paired ? $<HTMLButtonElement>("copy-key") : adminView ? $<HTMLElement>("admin-nav").querySelector("a")! : connectButton);
}

/** A session is open: in the sign-in view, on to where the browser was going; in the console, show it. */
function sessionOpened(answer: gate.SignedInAnswer, paired: boolean): void {
  if (LOGIN_VIEW) {
    say("Signed in. Taking you there…", "good");
    location.assign(answer.redirect);
    return;
  }
  const rows = describeSession(answer.principal, answer.session?.expires_at);
  showSignedIn({ via: "cookie", principal: answer.principal }, rows, paired, "Signed in.", "good");
  focusNextStep(paired);
}

/** A sign-in that was refused: a session the browser already has stays; a token in memory goes. */
function signInRefused(message: string): void {
  if (identity?.via === "cookie") {
    updateControls();
    return say(`${message} You are still signed in as before.`, "bad");
  }
  endSession(message, "bad");
}

function settle(answer: Outcome<gate.SignedInAnswer>, paired: boolean, explain = explainSignIn): void {
  if (answer === undefined) return signInRefused(UNREACHABLE);
  if (answer.ok === "failed") return signInRefused(answer.message);
  if (answer.ok) return sessionOpened(answer.body, paired);
  signInRefused(explain(answer.refusal));
}

/**
 * A token that cannot open a browser session (the bootstrap token, an access token): checked over
 * HTTP, then kept in this page's memory only, as the console always did.
 */
async function keepInMemory(token: string, paired: boolean): Promise<void> {
  if (LOGIN_VIEW) {
    return signInRefused("This token cannot open a browser session. Sign in with an API key (tg_…), a password or a passkey.");
  }
  const verdict = await checkToken(location.origin, token);
  if (verdict === undefined) return signInRefused(UNREACHABLE);
  if (verdict !== "ok") return signInRefused(explainRefusal(verdict));
  const answer = await gate.whoami(token);
  if (answer === undefined || !answer.ok) return signInRefused(UNREACHABLE);
  // Someone else now: the browser session this page had must not come back on a reload.
  if (identity?.via === "cookie") await gate.signOut(false);
  const rows = describeToken(answer.body);
  showSignedIn(
    { via: "memory", token, principal: answer.body },
    rows,
    paired,
    "Signed in, in this page only: a reload signs you out.",
    "warn",
  );
  focusNextStep(paired);
}

async function signInWithToken(token: string, paired = false): Promise<void> {
  dropSocket();
  say("Signing in…");
  const answer = await gate.signIn({ api_key: token }, target);
  if (answer !== undefined && !answer.ok && answer.refusal.code === "access_denied") return keepInMemory(token, paired);
  settle(answer, paired);
}

async function signInWithPassword(username: string, password: string): Promise<void> {
  dropSocket();
  say("Signing in…");
  settle(await gate.signIn({ username, password }, target), false);
}

async function signInWithPasskeyClicked(): Promise<void> {
  // Like the other ways: the socket belongs to whoever was signed in, whose session a new one replaces.
  dropSocket();
  say("Follow your browser's passkey prompt…");
  settle(await signInWithPasskey(target), false, explainPasskeyRefusal);
}

/** "Add a passkey": the password is asked first (the form), then the browser's prompt. */
function askPasswordForPasskey(): void {
  passkeyAddForm.hidden = false;
  passkeyPassword.focus();
}

function closePasskeyForm(): void {
  passkeyPassword.value = "";
  passkeyAddForm.hidden = true;
  passkeyAddButton.focus();
}

async function addPasskeyConfirmed(): Promise<void> {
  const password = passkeyPassword.value;
  closePasskeyForm();
  say("Follow your browser's prompt to create the passkey…");
  const answer = await addPasskey(password);
  if (answer === undefined) return say(UNREACHABLE, "bad");
  if (answer.ok === "failed") return say(answer.message, "bad");
  if (!answer.ok) return say(`The passkey was not added. ${explainPasskeyRefusal(answer.refusal)}`, "bad");
  say("Passkey added. Next time you can sign in with it.", "good");
}

async function signOut(everywhere: boolean): Promise<void> {
  if (identity?.via !== "cookie") return endSession("Signed out.", "");
  dropSocket();
  updateControls();
  const answer = await gate.signOut(everywhere);
  if (answer === undefined) return say(`${UNREACHABLE} The browser session may still be open: sign out again.`, "bad");
  if (!answer.ok) return say(`Sign-out refused: ${explainSignIn(answer.refusal)}`, "bad");
  const ended = answer.body.sessions_ended;
  endSession(everywhere ? `Signed out everywhere (${ended} session${ended === 1 ? "" : "s"} ended).` : "Signed out.", "");
}

/** The server refused the credential itself (wrong, revoked, expired): the page signs out. */
const CREDENTIAL_CLOSES = new Set([4401, 4403]);

/** A close by the server or the network (the user's own Disconnect stops listening first). */
function onClose(event: Extract<ClientEvent, { type: "close" }>): void {
  socketOpen = false;
  if (event.terminal) client = undefined;
  if (event.terminal && CREDENTIAL_CLOSES.has(event.code)) {
    endSession(event.explanation, "bad");
  } else {
    updateControls();
    say(event.explanation, event.terminal ? "bad" : "");
  }
  note(`Connection closed: ${event.explanation}`, event.terminal ? "bad" : "");
}

/** A refused upgrade, explained over HTTP: for a cookie socket, "no credential" means the session ended. */
function onRefused(event: Extract<ClientEvent, { type: "refused" }>): void {
  const sessionGone = identity?.via === "cookie" && (event.code === "missing_token" || event.code === "invalid_token");
  const explanation = sessionGone ? "Your browser session has ended (signed out elsewhere, or expired). Sign in again." : event.explanation;
  endSession(explanation, "bad");
  note(`Refused: ${explanation}`, "bad");
}

function onExpiring(event: Extract<ClientEvent, { type: "auth_expiring" }>): void {
  if (event.renewing) return note(`Your sign-in expires in ${event.expiresIn} s; renewing it.`);
  const what = identity?.via === "cookie" ? "Your browser session" : "This credential";
  note(`${what} expires in ${event.expiresIn} s and cannot be renewed; sign in again with a new one.`, "warn");
}

/** How the page reacts to the socket; every line says what happened in words, never a code. */
function onEvent(event: ClientEvent): void {
  switch (event.type) {
    case "connecting":
      return say(event.attempt === 0 ? "Connecting…" : `Reconnecting (attempt ${event.attempt})…`);
    case "open":
      socketOpen = true;
      updateControls();
      rescueFocus(messageInput);
      say("Connected.", "good");
      return note("Connected.");
    case "message":
      return noteReceived(typeof event.data === "string" ? event.data : `${event.data.byteLength} bytes`);
    case "close":
      return onClose(event);
    case "refused":
      return onRefused(event);
    case "reconnecting":
      return note(`retrying in ${(event.delayMs / 1000).toFixed(1)} s`);
    case "auth_expiring":
      return onExpiring(event);
    case "auth_ok":
      return note("Sign-in renewed.");
    case "auth_error":
      return note(`Renewal refused: ${event.description}`, "bad");
  }
}

function connect(): void {
  if (identity === undefined) return;
  dropSocket();
  const url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
  // A cookie socket sends no token: the browser attaches the session cookie to the upgrade.
  client = new TokengateClient(identity.via === "memory" ? { url, token: identity.token } : { url });
  stopListening = client.on(onEvent);
  updateControls();
  rescueFocus(disconnectButton);
  client.connect();
}

/** Copies the one-time key, then takes it off the screen: once stored it has no business here. */
async function copyPairedKey(): Promise<void> {
  if (!(await copyOrSelect($<HTMLOutputElement>("paired-key")))) {
    return say("This browser did not allow copying: the key is selected, copy it with Ctrl+C (or ⌘C).", "warn");
  }
  hidePairedKey();
  say("Key copied. It is no longer shown on this page.", "good");
}

async function pair(code: string): Promise<void> {
  const answer = await gate.postForm<{ api_key?: string }>("/auth/pair", { code });
  if (answer === undefined) return say(UNREACHABLE, "bad");
  if (!answer.ok || answer.body.api_key === undefined) {
    return say(`Pairing refused: ${answer.ok ? "no key came back" : answer.refusal.description}`, "bad");
  }
  $<HTMLInputElement>("pair-code").value = "";
  $<HTMLFormElement>("pair-form").hidden = true;
  $<HTMLParagraphElement>("pair-intro").hidden = true;
  $<HTMLOutputElement>("paired-key").textContent = answer.body.api_key;
  $<HTMLElement>("paired").hidden = false;
  await signInWithToken(answer.body.api_key, true);
}

/** Shows the pairing section only while the device has no credentials, naming the command that exists there. */
async function showPairing(): Promise<void> {
  const response = await fetch("/auth/pair").catch(() => undefined);
  const body = (response?.ok === true ? await response.json().catch(() => ({})) : {}) as { pairing?: string; command?: string };
  if (body.command !== undefined) $<HTMLElement>("pair-command").textContent = body.command;
  $<HTMLElement>("pairing").hidden = body.pairing !== "open";
}

function wireForms(): void {
  onSubmit("pair-form", () => {
    const code = $<HTMLInputElement>("pair-code").value.replace(/\s/g, "");
    if (!/^\d{6}$/.test(code)) return say("The pairing code is 6 digits.", "bad");
    void pair(code);
  });
  onSubmit("token-form", () => {
    const token = tokenInput.value.trim();
    if (token === "") return say("Paste an API key or token first.", "bad");
    void signInWithToken(token);
  });
  onSubmit("password-form", () => void signInWithPassword(usernameInput.value.trim(), passwordInput.value));
  onSubmit("send-form", () => {
    if (client === undefined || messageInput.value === "") return;
    client.send(messageInput.value);
    note(`→ ${messageInput.value}`);
    messageInput.value = "";
  });
  enableForm("pair-form");
}

function wireButtons(): void {
  connectButton.addEventListener("click", connect);
  disconnectButton.addEventListener("click", () => {
    // The user's own choice: a plain, neutral word, not a close code or an alarm.
    dropSocket();
    updateControls();
    rescueFocus(connectButton);
    say("Disconnected.");
    note("Disconnected.");
  });
  const signOutClicked = (everywhere: boolean) => async () => {
    await signOut(everywhere);
    rescueFocus(usernameInput);
  };
  signOutButton.addEventListener("click", signOutClicked(false));
  signOutEverywhere.addEventListener("click", signOutClicked(true));
  $<HTMLButtonElement>("passkey-signin").addEventListener("click", () => void signInWithPasskeyClicked());
  passkeyAddButton.addEventListener("click", askPasswordForPasskey);
  passkeyAddForm.addEventListener("submit", (event) => {
    event.preventDefault();
    void addPasskeyConfirmed();
  });
  $<HTMLButtonElement>("passkey-add-cancel").addEventListener("click", closePasskeyForm);
  $<HTMLButtonElement>("copy-key").addEventListener("click", () => void copyPairedKey());
}

/** Passkeys where the browser allows them; elsewhere, one plain sentence on what they need. */
function offerPasskeys(): void {
  const possible = passkeysPossible();
  $<HTMLElement>("passkey-way").hidden = !possible;
  $<HTMLElement>("passkey-note").hidden = possible;
  // One main button: the passkey where it can work, the password otherwise.
  $<HTMLButtonElement>("password-submit").classList.toggle("primary", !possible);
}

/** The sign-in view: its own title, where it leads, and the error a sign-in without script came back with. */
function showLoginView(): void {
  document.title = "Sign in · tokengate";
  document.body.classList.add("login-view");
  $<HTMLElement>("title").textContent = "Sign in";
  $<HTMLElement>("signin-title").hidden = true;
  $<HTMLElement>("signin").setAttribute("aria-labelledby", "title");
  for (const field of document.querySelectorAll<HTMLInputElement>("input[name=rd]")) field.value = target;
  const where = $<HTMLParagraphElement>("continue-to");
  const path = target.startsWith("/") && !target.startsWith("//") ? target : "";
  where.textContent = path === "" ? "Sign in to continue." : `Sign in to continue to ${path}`;
  where.hidden = false;
  const error = new URLSearchParams(location.search).get("error");
  say(error === null ? "" : explainErrorParameter(error), error === null ? "" : "bad");
}

function showConsole(): void {
  $<HTMLElement>("who-section").hidden = false;
  $<HTMLElement>("socket-section").hidden = false;
  void showPairing();
}

/** A reload keeps the browser session: the cookie goes with this question, and the answer shows who. */
async function restoreSession(): Promise<void> {
  const answer = await gate.whoami();
  if (answer === undefined || identity !== undefined) return;
  if (!answer.ok) {
    // A cookie that no longer works (ended elsewhere, expired): say so once; no cookie at all is just "not signed in".
    if (answer.refusal.code === "invalid_token" && !LOGIN_VIEW) say("Your browser session has ended. Sign in again.", "warn");
    return;
  }
  if (LOGIN_VIEW) return say(`You are signed in as ${answer.body.name}. Signing in again replaces that session.`, "");
  showSignedIn({ via: "cookie", principal: answer.body }, describeSession(answer.body, undefined), false, "Signed in.", "good");
}

/** The console's pages; the sign-in and device views have none. */
const pages =
  LOGIN_VIEW || DEVICE_VIEW
    ? undefined
    : createPages({
        signedIn: () => (identity === undefined ? undefined : { principal: identity.principal, session: identity.via === "cookie" }),
        signedOut: (message) => endSession(message, "warn"),
      });

wireForms();
wireButtons();
offerPasskeys();
pages?.setAccess(false, false);
if (LOGIN_VIEW) showLoginView();
else if (DEVICE_VIEW) openDevicePage();
else showConsole();
updateControls();
// The device view asks who is signed in itself (and sends a stranger to the sign-in page).
if (!DEVICE_VIEW) void restoreSession();
