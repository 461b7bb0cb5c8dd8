/**
 * A typed tokengate WebSocket client for browsers and Bun.
 *
 * - Authenticates with the subprotocol transport (the token never goes into a URL) or a
 *   single-use ticket from `POST /auth/ws-ticket`.
 * - Explains refusals: a browser sees a refused upgrade only as close code 1006, so before
 *   retrying after one the client asks `/auth/whoami` with the same token and reports the
 *   server's own reason (wrong, revoked, expired, missing scope) instead of guessing.
 * - Reconnects with exponential backoff and full jitter, but never after a terminal close
 *   (4403 revoked, 4400 bad request, 4401 expired with no way to get a fresh token).
 * - Refreshes before expiry: on `auth_expiring` it asks its token provider for a fresh token and
 *   sends it in-band (`{"type":"auth","token":…}`). A provider that hands back the token already
 *   in use (an API key) cannot renew anything: the warning is reported once, and nothing is sent,
 *   since re-sending the same token would only make the server warn again.
 */

/** Why a token is asked for: to open a socket, or to replace one about to expire. */
export type TokenPurpose = "connect" | "renew";
export type TokenSource = string | ((purpose: TokenPurpose) => string | Promise<string>);

export interface ClientOptions {
  /** `ws://host:8000/ws` or `wss://…`. */
  readonly url: string;
  /** A token, or a function that returns a current one (called on every connect, and to renew). */
  readonly token?: TokenSource;
  /** Use a single-use ticket (`?ticket=`) fetched with the token instead of the subprotocol. */
  readonly useTicket?: boolean;
  readonly reconnect?: { readonly baseMs?: number; readonly maxMs?: number; readonly maxAttempts?: number };
  /** For tests: a different WebSocket implementation, clock-free randomness. */
  readonly WebSocketImpl?: typeof WebSocket;
  readonly random?: () => number;
  readonly fetchImpl?: typeof fetch;
}

export type ClientEvent =
  | { readonly type: "connecting"; readonly attempt: number }
  | { readonly type: "open"; readonly protocol: string }
  | { readonly type: "message"; readonly data: string | ArrayBuffer }
  /** `byClient`: this client's own `close()` (a user's Disconnect), not the server or the network. */
  | {
      readonly type: "close";
      readonly code: number;
      readonly reason: string;
      readonly explanation: string;
      readonly terminal: boolean;
      readonly byClient: boolean;
    }
  | { readonly type: "refused"; readonly status: number; readonly code: string; readonly explanation: string }
  | { readonly type: "reconnecting"; readonly attempt: number; readonly delayMs: number }
  /** `renewing`: a fresh token is being fetched and sent; false when the credential cannot be renewed. */
  | { readonly type: "auth_expiring"; readonly expiresIn: number; readonly renewing: boolean }
  | { readonly type: "auth_ok"; readonly expiresIn: number | null }
  | { readonly type: "auth_error"; readonly code: string; readonly description: string };

export type Listener = (event: ClientEvent) => void;

/** What a close code means, in words a person understands, and whether retrying can help. */
export function describeClose(code: number, reason: string): { explanation: string; terminal: boolean } {
  const why = reason === "" ? "" : ` (${reason})`;
  switch (code) {
    case 1000:
      return { explanation: `The server ended the connection${why}.`, terminal: true };
    case 1001:
      return { explanation: `The server is restarting or shutting down${why}; reconnecting.`, terminal: false };
    case 1006:
      return { explanation: "The connection dropped or was refused before it opened; checking why.", terminal: false };
    case 1009:
      return { explanation: "A message was larger than the server accepts.", terminal: false };
    case 1011:
      return { explanation: "The server hit an internal error.", terminal: false };
    case 1013:
      return { explanation: "The server is busy; trying again shortly.", terminal: false };
    case 4400:
      return { explanation: `The server found the request malformed${why}.`, terminal: true };
    case 4401:
      return { explanation: `Your credential expired${why}; sign in again.`, terminal: true };
    case 4403:
      return { explanation: `Your access was revoked${why}; ask for a new key or sign in again.`, terminal: true };
    case 4421:
      return { explanation: "The server does not answer for this host name (ALLOWED_HOSTS).", terminal: true };
    case 4429:
      return { explanation: "Too many failed attempts from this device; wait a minute and try again.", terminal: true };
    default:
      return { explanation: `The server closed the connection${why}.`, terminal: code >= 4000 };
  }
}

type Control = { type: string; expires_in?: number | null; code?: string; description?: string };

/** A server control message, or `undefined`: an echoed user message may merely look like one. */
function parseControl(text: string): Control | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null && typeof (value as Control).type === "string" ? (value as Control) : undefined;
  } catch {
    return undefined;
  }
}

/** Exponential backoff with full jitter: uniform in [0, min(max, base·2^attempt)]. */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  return Math.floor(random() * Math.min(maxMs, baseMs * 2 ** attempt));
}

/** The subprotocol entry that carries a token: `tokengate.bearer.<base64url>`. */
export function bearerProtocol(token: string): string {
  return `tokengate.bearer.${btoa(token).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")}`;
}

/** The HTTP(S) origin of a ws(s):// URL. */
export function httpOrigin(wsUrl: string): string {
  const url = new URL(wsUrl);
  return `${url.protocol === "wss:" ? "https:" : "http:"}//${url.host}`;
}

interface ServerRefusal {
  readonly status: number;
  readonly code: string;
  readonly description: string;
}

/**
 * Asks the server what it thinks of a token; `undefined` when the server cannot be reached. Without
 * a token a browser's same-origin request still carries the session cookie, so a cookie socket's
 * refusal is explained the same way.
 */
export async function checkToken(
  origin: string,
  token: string | undefined,
  fetchImpl: typeof fetch = fetch,
): Promise<ServerRefusal | "ok" | undefined> {
  try {
    const headers: Record<string, string> = token === undefined ? {} : { Authorization: `Bearer ${token}` };
    const response = await fetchImpl(`${origin}/auth/whoami`, { headers, credentials: "same-origin" });
    if (response.ok) return "ok";
    const body = (await response.json().catch(() => ({}))) as { code?: string; description?: string; detail?: string };
    return { status: response.status, code: body.code ?? "unknown", description: body.description ?? body.detail ?? response.statusText };
  } catch {
    return undefined;
  }
}

export function explainRefusal(refusal: ServerRefusal): string {
  switch (refusal.code) {
    case "missing_token":
      return "No credential was sent; sign in first.";
    case "invalid_token":
      return /revoked/i.test(refusal.description)
        ? "This credential has been revoked."
        : /expired/i.test(refusal.description)
          ? "This credential has expired; sign in again."
          : "This credential is not valid (wrong or unknown token).";
    case "insufficient_scope":
      return "This credential may not open the WebSocket (it lacks the ws:connect scope).";
    case "too_many_requests":
      return "Too many failed attempts from this device; wait a minute and try again.";
    case "forbidden_origin":
      return "This page's origin is not allowed to use the server (ALLOWED_ORIGINS).";
    case "misdirected_request":
      return "The server does not answer for this host name (ALLOWED_HOSTS).";
    default:
      return `Refused (${refusal.status} ${refusal.code}): ${refusal.description}`;
  }
}

export class TokengateClient {
  readonly #options: ClientOptions;
  readonly #listeners = new Set<Listener>();
  #socket: WebSocket | undefined;
  #attempt = 0;
  #stopped = false;
  #opened = false;
  /** Set by `close()`: the close that follows is this client's own, not the server's. */
  #closedByClient = false;
  /** The token the server knows this socket by: sent on connect, or in-band since. */
  #current: string | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: ClientOptions) {
    this.#options = options;
  }

  on(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  get connected(): boolean {
    return this.#socket !== undefined && this.#socket.readyState === 1;
  }

  connect(): void {
    this.#stopped = false;
    this.#closedByClient = false;
    void this.#open();
  }

  send(data: string | ArrayBuffer | Uint8Array): void {
    this.#socket?.send(data);
  }

  /** Closes for good: no reconnect. */
  close(): void {
    this.#stopped = true;
    this.#closedByClient = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#socket?.close(1000, "client closed");
  }

  #emit(event: ClientEvent): void {
    for (const listener of this.#listeners) listener(event);
  }

  async #token(purpose: TokenPurpose): Promise<string | undefined> {
    const source = this.#options.token;
    return source === undefined ? undefined : typeof source === "string" ? source : await source(purpose);
  }

  async #open(): Promise<void> {
    if (this.#stopped) return;
    this.#emit({ type: "connecting", attempt: this.#attempt });
    const Impl = this.#options.WebSocketImpl ?? WebSocket;
    const token = await this.#token("connect").catch(() => undefined);
    // close() may have been called while the token was being fetched.
    if (this.#stopped) return;
    this.#current = token;
    let socket: WebSocket;
    if (this.#options.useTicket === true && token !== undefined) {
      const ticket = await this.#ticket(token);
      if (ticket === undefined) return;
      socket = new Impl(`${this.#options.url}${this.#options.url.includes("?") ? "&" : "?"}ticket=${encodeURIComponent(ticket)}`);
    } else {
      socket = token === undefined ? new Impl(this.#options.url) : new Impl(this.#options.url, ["tokengate", bearerProtocol(token)]);
    }
    socket.binaryType = "arraybuffer";
    this.#socket = socket;
    this.#opened = false;
    socket.onopen = () => {
      this.#opened = true;
      this.#attempt = 0;
      this.#emit({ type: "open", protocol: socket.protocol });
    };
    socket.onmessage = (event) => this.#onMessage(event.data as string | ArrayBuffer);
    socket.onclose = (event) => void this.#onClose(event.code, event.reason, token);
  }

  /** A ticket, or `undefined` after reporting why there is none (the refusal is terminal). */
  async #ticket(token: string): Promise<string | undefined> {
    const fetchImpl = this.#options.fetchImpl ?? fetch;
    try {
      const response = await fetchImpl(`${httpOrigin(this.#options.url)}/auth/ws-ticket`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}` },
      });
      const body = (await response.json()) as { ticket?: string; code?: string; description?: string; detail?: string };
      if (response.ok && body.ticket !== undefined) return body.ticket;
      const refusal = { status: response.status, code: body.code ?? "unknown", description: body.description ?? body.detail ?? "" };
      this.#emit({ type: "refused", ...refusal, explanation: explainRefusal(refusal) });
      this.#stopped = true;
    } catch {
      this.#schedule();
    }
    return undefined;
  }

  #onMessage(data: string | ArrayBuffer): void {
    const control = typeof data === "string" && data.startsWith('{"type":"auth') ? parseControl(data) : undefined;
    if (control !== undefined) {
      if (control.type === "auth_expiring") {
        void this.#refresh(control.expires_in ?? 0);
        return;
      }
      if (control.type === "auth_ok") {
        this.#emit({ type: "auth_ok", expiresIn: control.expires_in ?? null });
        return;
      }
      if (control.type === "auth_error") {
        this.#emit({ type: "auth_error", code: control.code ?? "unknown", description: control.description ?? "" });
        return;
      }
    }
    this.#emit({ type: "message", data });
  }

  /**
   * Sends a fresh token in-band when the token source gives one. The same token again (a fixed
   * key behind a function) renews nothing, and the server would answer it with another warning.
   */
  async #refresh(expiresIn: number): Promise<void> {
    const fresh = typeof this.#options.token === "function" ? await this.#token("renew").catch(() => undefined) : undefined;
    const renewing = fresh !== undefined && fresh !== this.#current;
    this.#emit({ type: "auth_expiring", expiresIn, renewing });
    if (!renewing || !this.connected) return;
    this.#current = fresh;
    this.#socket!.send(JSON.stringify({ type: "auth", token: fresh }));
  }

  async #onClose(code: number, reason: string, token: string | undefined): Promise<void> {
    if (this.#closedByClient) {
      this.#emit({ type: "close", code, reason, explanation: "Disconnected.", terminal: true, byClient: true });
      return;
    }
    const described = describeClose(code, reason);
    // An expired credential is only terminal if nothing can hand us a fresh one.
    const terminal = described.terminal && !(code === 4401 && typeof this.#options.token === "function");
    this.#emit({ type: "close", code, reason, explanation: described.explanation, terminal, byClient: false });
    if (this.#stopped || terminal) return;
    if (code === 1006 && !this.#opened) {
      // Refused upgrade or dead server? Ask over HTTP, where refusals come with reasons (a
      // tokenless browser socket rides on the session cookie, which the same question carries).
      const verdict = await checkToken(httpOrigin(this.#options.url), token, this.#options.fetchImpl ?? fetch);
      if (verdict !== undefined && verdict !== "ok") {
        this.#emit({ type: "refused", ...verdict, explanation: explainRefusal(verdict) });
        this.#stopped = true;
        return;
      }
    }
    this.#schedule();
  }

  #schedule(): void {
    const reconnect = this.#options.reconnect ?? {};
    const maxAttempts = reconnect.maxAttempts ?? Number.POSITIVE_INFINITY;
    if (this.#attempt >= maxAttempts) {
      this.#stopped = true;
      return;
    }
    const delayMs = backoffDelay(this.#attempt, reconnect.baseMs ?? 500, reconnect.maxMs ?? 30_000, this.#options.random ?? Math.random);
    this.#attempt += 1;
    this.#emit({ type: "reconnecting", attempt: this.#attempt, delayMs });
    this.#timer = setTimeout(() => void this.#open(), delayMs);
  }
}
