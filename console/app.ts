/**
 * The console page: sign in with a key/token or a password, see who you are, open the WebSocket
 * (subprotocol transport: the token never goes into a URL) and read every refusal and close in
 * plain words. Tokens live in this page's memory only. What the page shows follows the server's
 * answers: a refused credential signs the page out, and the socket goes with the identity.
 */
import { checkToken, explainRefusal, TokengateClient, type ClientEvent, type TokenPurpose, type TokenSource } from "../client/tokengate.ts";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = $<HTMLParagraphElement>("status");
const who = $<HTMLDListElement>("who");
const log = $<HTMLOListElement>("log");
const connectButton = $<HTMLButtonElement>("connect");
const disconnectButton = $<HTMLButtonElement>("disconnect");
const sendButton = $<HTMLButtonElement>("send");
const messageInput = $<HTMLInputElement>("message");
const signOutButton = $<HTMLButtonElement>("sign-out");

type Tone = "good" | "bad" | "warn" | "";

/** Who the page acts as: a fixed token, or a source that renews a signed-in user's token. */
interface Session {
  readonly source: TokenSource;
  /** Signed in with the key this page just received by pairing (still shown until stored). */
  readonly paired: boolean;
}

let session: Session | undefined;
let client: TokengateClient | undefined;
let stopListening: (() => void) | undefined;
let socketOpen = false;

function say(text: string, tone: Tone = ""): void {
  status.textContent = text;
  status.className = tone;
}

function note(text: string, tone: Tone | "in" = ""): void {
  const item = document.createElement("li");
  item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  if (tone !== "") item.className = tone;
  log.append(item);
  log.scrollTop = log.scrollHeight;
}

/** Buttons follow the state: nothing to do before sign-in, Send only on an open socket. */
function updateControls(): void {
  const signedIn = session !== undefined;
  signOutButton.disabled = !signedIn;
  connectButton.disabled = !signedIn || client !== undefined;
  disconnectButton.disabled = client === undefined;
  sendButton.disabled = !socketOpen;
  messageInput.disabled = !socketOpen;
}

type WhoAmI = { id: string; kind: string; name: string; scopes: string[]; expires_at: string | null };

function showWho(rows: ReadonlyArray<readonly [string, string]>): void {
  who.replaceChildren(
    ...rows.flatMap(([term, value]) => {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = value;
      return [dt, dd];
    }),
  );
}

function describeWho(body: WhoAmI): Array<[string, string]> {
  return [
    ["Signed in as", `${body.name} (${body.kind})`],
    ["Id", body.id],
    ["Scopes", body.scopes.join(" ") || "none"],
    ["Expires", body.expires_at === null ? "never" : new Date(body.expires_at).toLocaleString()],
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

/** A control that just disabled itself drops keyboard focus to the page: hand it to the next step. */
function rescueFocus(next: HTMLElement): void {
  const active = document.activeElement;
  const lost =
    active === null ||
    active === document.body ||
    ((active instanceof HTMLButtonElement || active instanceof HTMLInputElement) && active.disabled);
  if (lost) next.focus();
}

/** Back to "nobody": no token in memory, no socket, no identity on screen. */
function endSession(message: string, tone: Tone): void {
  dropSocket();
  session = undefined;
  hidePairedKey();
  $<HTMLInputElement>("token").value = "";
  showWho([["Signed in as", "nobody"]]);
  updateControls();
  say(message, tone);
}

/** Checks a credential over HTTP first: any refusal comes back with its reason and signs the page out. */
async function signIn(source: TokenSource, paired: boolean): Promise<void> {
  dropSocket();
  const token = typeof source === "string" ? source : await source("connect");
  const verdict = await checkToken(location.origin, token);
  if (verdict === undefined) return endSession("The server cannot be reached; you are signed out.", "bad");
  if (verdict !== "ok") return endSession(explainRefusal(verdict), "bad");
  const response = await fetch("/auth/whoami", { headers: { Authorization: `Bearer ${token}` } });
  session = { source, paired };
  if (!paired) hidePairedKey();
  // In memory from here on; not left in a field for anyone at the screen to reveal.
  $<HTMLInputElement>("token").value = "";
  showWho(describeWho((await response.json()) as WhoAmI));
  updateControls();
  say("Signed in.", "good");
}

type TokenAnswer = { access_token?: string; refresh_token?: string; expires_in?: number; error_description?: string };

async function requestToken(fields: Record<string, string>): Promise<{ ok: boolean; statusText: string; body: TokenAnswer }> {
  const response = await fetch("/auth/token", {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields),
  });
  return { ok: response.ok, statusText: response.statusText, body: (await response.json().catch(() => ({}))) as TokenAnswer };
}

/** A token ask this close to expiry gets a fresh token even when only connecting. */
const NEARLY_EXPIRED_MS = 10_000;

/**
 * A signed-in user's access token, renewed with the refresh token when the server warns that it
 * expires (or when connecting with one about to). Without a refresh token it hands back the same
 * token, which the client reports as a credential that cannot be renewed.
 */
function renewingSource(access: string, refresh: string | undefined, expiresIn: number): (purpose: TokenPurpose) => Promise<string> {
  let expiresAt = Date.now() + expiresIn * 1000;
  return async (purpose) => {
    const due = purpose === "renew" || expiresAt - Date.now() < NEARLY_EXPIRED_MS;
    if (!due || refresh === undefined) return access;
    const renewed = await requestToken({ grant_type: "refresh_token", refresh_token: refresh }).catch(() => undefined);
    const next = renewed?.body;
    if (next?.access_token === undefined) return access;
    access = next.access_token;
    refresh = next.refresh_token ?? refresh;
    expiresAt = Date.now() + (next.expires_in ?? 0) * 1000;
    return access;
  };
}

async function signInWithPassword(username: string, password: string): Promise<void> {
  const answer = await requestToken({ grant_type: "password", username, password }).catch(() => undefined);
  if (answer === undefined) return endSession("The server cannot be reached; you are signed out.", "bad");
  const { access_token: access, refresh_token: refresh, expires_in: expiresIn, error_description: why } = answer.body;
  if (!answer.ok || access === undefined) return endSession(`Sign-in refused: ${why ?? answer.statusText}`, "bad");
  await signIn(renewingSource(access, refresh, expiresIn ?? 0), false);
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
      return note(`← ${typeof event.data === "string" ? event.data : `${event.data.byteLength} bytes`}`, "in");
    case "close":
      return onClose(event);
    case "refused":
      // A refusal over HTTP after a failed upgrade: the server's own reason, and the page signs out.
      endSession(event.explanation, "bad");
      return note(`Refused: ${event.explanation}`, "bad");
    case "reconnecting":
      return note(`retrying in ${(event.delayMs / 1000).toFixed(1)} s`);
    case "auth_expiring":
      return event.renewing
        ? note(`Your sign-in expires in ${event.expiresIn} s; renewing it.`)
        : note(`This credential expires in ${event.expiresIn} s and cannot be renewed; sign in again with a new one.`, "warn");
    case "auth_ok":
      return note("Sign-in renewed.");
    case "auth_error":
      return note(`Renewal refused: ${event.description}`, "bad");
  }
}

function connect(): void {
  if (session === undefined) return;
  dropSocket();
  client = new TokengateClient({ url: `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`, token: session.source });
  stopListening = client.on(onEvent);
  updateControls();
  rescueFocus(disconnectButton);
  client.connect();
}

/** Copies the one-time key, then takes it off the screen: once stored it has no business here. */
async function copyPairedKey(): Promise<void> {
  const key = $<HTMLOutputElement>("paired-key").textContent ?? "";
  // navigator.clipboard exists only in secure contexts (https, localhost), not on http://192.168.…
  const copied = await navigator.clipboard?.writeText(key).then(
    () => true,
    () => false,
  );
  if (copied !== true) {
    getSelection()?.selectAllChildren($<HTMLOutputElement>("paired-key"));
    return say("This browser did not allow copying: the key is selected, copy it with Ctrl+C (or ⌘C).", "warn");
  }
  hidePairedKey();
  say("Key copied. It is no longer shown on this page.", "good");
}

async function pair(code: string): Promise<void> {
  const response = await fetch("/auth/pair", {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ code }),
  }).catch(() => undefined);
  if (response === undefined) return say("The server cannot be reached.", "bad");
  const body = (await response.json().catch(() => ({}))) as { api_key?: string; error_description?: string };
  if (!response.ok || body.api_key === undefined) return say(`Pairing refused: ${body.error_description ?? response.statusText}`, "bad");
  $<HTMLInputElement>("pair-code").value = "";
  $<HTMLFormElement>("pair-form").hidden = true;
  $<HTMLParagraphElement>("pair-intro").hidden = true;
  $<HTMLOutputElement>("paired-key").textContent = body.api_key;
  $<HTMLElement>("paired").hidden = false;
  await signIn(body.api_key, true);
}

/** Shows the pairing section only while the device has no credentials, naming the command that exists there. */
async function showPairing(): Promise<void> {
  const response = await fetch("/auth/pair").catch(() => undefined);
  const body = (response?.ok === true ? await response.json().catch(() => ({})) : {}) as { pairing?: string; command?: string };
  if (body.command !== undefined) $<HTMLElement>("pair-command").textContent = body.command;
  $<HTMLElement>("pairing").hidden = body.pairing !== "open";
}

/** A submit handler that never lets the browser submit the form itself. */
function onSubmit(id: string, handle: () => void): void {
  $<HTMLFormElement>(id).addEventListener("submit", (event) => {
    event.preventDefault();
    handle();
  });
}

function wireForms(): void {
  onSubmit("pair-form", () => {
    const code = $<HTMLInputElement>("pair-code").value.replace(/\s/g, "");
    if (!/^\d{6}$/.test(code)) return say("The pairing code is 6 digits.", "bad");
    void pair(code);
  });
  onSubmit("token-form", () => {
    const token = $<HTMLInputElement>("token").value.trim();
    if (token === "") return say("Paste an API key or token first.", "bad");
    void signIn(token, false);
  });
  onSubmit("password-form", () => {
    const username = $<HTMLInputElement>("username").value.trim();
    const password = $<HTMLInputElement>("password");
    void signInWithPassword(username, password.value);
    password.value = "";
  });
  onSubmit("send-form", () => {
    if (client === undefined || messageInput.value === "") return;
    client.send(messageInput.value);
    note(`→ ${messageInput.value}`);
    messageInput.value = "";
  });
  // The sign-in controls start disabled in the HTML, so nothing is submitted before these handlers exist.
  for (const id of ["pair-form", "token-form", "password-form"]) {
    for (const control of $<HTMLFormElement>(id).querySelectorAll<HTMLInputElement | HTMLButtonElement>("input, button"))
      control.disabled = false;
  }
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
  signOutButton.addEventListener("click", () => {
    endSession("Signed out.", "");
    rescueFocus($<HTMLInputElement>("token"));
    note("Signed out.");
  });
  $<HTMLButtonElement>("copy-key").addEventListener("click", () => void copyPairedKey());
}

wireForms();
wireButtons();
void showPairing();
