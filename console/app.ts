/**
 * The console page: sign in with a key/token or a password, see who you are, open the WebSocket
 * (subprotocol transport: the token never goes into a URL) and read every refusal and close in
 * plain words. Tokens live in this page's memory only.
 */
import { checkToken, explainRefusal, TokengateClient, type ClientEvent } from "../client/tokengate.ts";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = $<HTMLParagraphElement>("status");
const who = $<HTMLDListElement>("who");
const log = $<HTMLOListElement>("log");
const connectButton = $<HTMLButtonElement>("connect");
const disconnectButton = $<HTMLButtonElement>("disconnect");
const sendButton = $<HTMLButtonElement>("send");

let tokenSource: (() => Promise<string>) | undefined;
let client: TokengateClient | undefined;

function say(text: string, tone: "good" | "bad" | "" = ""): void {
  status.textContent = text;
  status.className = tone;
}

function note(text: string, tone: "bad" | "in" | "" = ""): void {
  const item = document.createElement("li");
  item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  if (tone !== "") item.className = tone;
  log.append(item);
  log.scrollTop = log.scrollHeight;
}

function showWho(body: { id: string; kind: string; name: string; scopes: string[]; expires_at: string | null }): void {
  const rows: Array<[string, string]> = [
    ["Signed in as", `${body.name} (${body.kind})`],
    ["Id", body.id],
    ["Scopes", body.scopes.join(" ") || "none"],
    ["Expires", body.expires_at === null ? "never" : new Date(body.expires_at).toLocaleString()],
  ];
  who.replaceChildren(...rows.flatMap(([term, value]) => {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value;
    return [dt, dd];
  }));
}

/** Checks a token over HTTP first: any refusal comes back with its reason. */
async function adopt(source: () => Promise<string>): Promise<void> {
  const token = await source();
  const verdict = await checkToken(location.origin, token);
  if (verdict === undefined) return say("The server cannot be reached.", "bad");
  if (verdict !== "ok") {
    connectButton.disabled = true;
    return say(explainRefusal(verdict), "bad");
  }
  const response = await fetch("/auth/whoami", { headers: { Authorization: `Bearer ${token}` } });
  showWho(await response.json());
  tokenSource = source;
  connectButton.disabled = false;
  say("Signed in.", "good");
}

// First-run pairing: shown only while the device has no credentials at all.
void fetch("/auth/pair")
  .then(async (response) => (response.ok ? ((await response.json()) as { pairing?: string }) : {}))
  .then((body) => {
    $<HTMLElement>("pairing").hidden = body.pairing !== "open";
  })
  .catch(() => undefined);

$<HTMLFormElement>("pair-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const code = $<HTMLInputElement>("pair-code").value.replace(/\s/g, "");
  if (!/^\d{6}$/.test(code)) return say("The pairing code is 6 digits.", "bad");
  void (async () => {
    const response = await fetch("/auth/pair", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ code }),
    }).catch(() => undefined);
    if (response === undefined) return say("The server cannot be reached.", "bad");
    const body = (await response.json().catch(() => ({}))) as { api_key?: string; error_description?: string };
    if (!response.ok || body.api_key === undefined) return say(`Pairing refused: ${body.error_description ?? response.statusText}`, "bad");
    const key = body.api_key;
    $<HTMLInputElement>("pair-code").value = "";
    $<HTMLFormElement>("pair-form").hidden = true;
    $<HTMLParagraphElement>("pair-intro").hidden = true;
    $<HTMLOutputElement>("paired-key").textContent = key;
    $<HTMLElement>("paired").hidden = false;
    await adopt(async () => key);
  })();
});

$<HTMLFormElement>("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $<HTMLInputElement>("token").value.trim();
  if (token === "") return say("Paste an API key or token first.", "bad");
  void adopt(async () => token);
});

$<HTMLFormElement>("password-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const username = $<HTMLInputElement>("username").value.trim();
  const password = $<HTMLInputElement>("password").value;
  void (async () => {
    const response = await fetch("/auth/token", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "password", username, password }),
    });
    const body = (await response.json()) as { access_token?: string; refresh_token?: string; error_description?: string };
    if (!response.ok || body.access_token === undefined) return say(`Sign-in refused: ${body.error_description ?? response.statusText}`, "bad");
    let access = body.access_token;
    let refresh = body.refresh_token;
    $<HTMLInputElement>("password").value = "";
    // The first call hands out the current access token; later calls (expiry warnings) refresh it.
    let first = true;
    await adopt(async () => {
      if (first || refresh === undefined) {
        first = false;
        return access;
      }
      const renewed = await fetch("/auth/token", {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: refresh }),
      });
      const next = (await renewed.json()) as { access_token?: string; refresh_token?: string };
      if (next.access_token !== undefined) access = next.access_token;
      if (next.refresh_token !== undefined) refresh = next.refresh_token;
      return access;
    });
  })();
});

function onEvent(event: ClientEvent): void {
  switch (event.type) {
    case "connecting":
      return say(event.attempt === 0 ? "Connecting…" : `Reconnecting (attempt ${event.attempt})…`);
    case "open":
      sendButton.disabled = false;
      disconnectButton.disabled = false;
      say("Connected.", "good");
      return note("connected");
    case "message":
      return note(`← ${typeof event.data === "string" ? event.data : `${event.data.byteLength} bytes`}`, "in");
    case "close":
      sendButton.disabled = true;
      say(`Closed (${event.code}): ${event.explanation}`, event.terminal ? "bad" : "");
      return note(`closed ${event.code}: ${event.explanation}`, event.terminal ? "bad" : "");
    case "refused":
      say(event.explanation, "bad");
      return note(`refused: ${event.explanation}`, "bad");
    case "reconnecting":
      return note(`retrying in ${(event.delayMs / 1000).toFixed(1)} s`);
    case "auth_expiring":
      return note(`credential expires in ${event.expiresIn} s; refreshing`);
    case "auth_ok":
      return note("credential refreshed");
    case "auth_error":
      return note(`refresh refused: ${event.description}`, "bad");
  }
}

connectButton.addEventListener("click", () => {
  if (tokenSource === undefined) return;
  client?.close();
  client = new TokengateClient({ url: `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`, token: tokenSource });
  client.on(onEvent);
  client.connect();
});

disconnectButton.addEventListener("click", () => {
  client?.close();
  disconnectButton.disabled = true;
});

$<HTMLFormElement>("send-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $<HTMLInputElement>("message");
  if (client === undefined || input.value === "") return;
  client.send(input.value);
  note(`→ ${input.value}`);
  input.value = "";
});
