/**
 * WebSocket tickets: single use, 30 s, bound to a path, only for principals with ws:connect, and
 * refused (with an HTTP answer a page can read) in every other case.
 */
import { insertApiKey } from "../support/keys.ts";
import { describe, expect, test } from "bun:test";
import { BOOTSTRAP_PRINCIPAL } from "../../auth/core/principal.ts";
import { createTicketBook, TICKET_TTL_MS } from "../../auth/secrets/tickets.ts";
import { rawRequest, startTestApp, WsProbe } from "../support/harness.ts";
import { expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";

describe("ticket book", () => {
  test("single use, path-bound, expiring", () => {
    let now = 1_000;
    const book = createTicketBook({ now: () => now });
    const first = book.issue(BOOTSTRAP_PRINCIPAL, "/ws");
    expect(first.expiresIn).toBe(30);
    expect(book.redeem(first.ticket, "/ws")).toBe(BOOTSTRAP_PRINCIPAL);
    expect(book.redeem(first.ticket, "/ws")).toBeUndefined();
    const wrongPath = book.issue(BOOTSTRAP_PRINCIPAL, "/ws");
    expect(book.redeem(wrongPath.ticket, "/other")).toBeUndefined();
    expect(book.redeem(wrongPath.ticket, "/ws")).toBeUndefined();
    const late = book.issue(BOOTSTRAP_PRINCIPAL, "/ws");
    now += TICKET_TTL_MS;
    expect(book.redeem(late.ticket, "/ws")).toBeUndefined();
    expect(book.redeem("not a ticket", "/ws")).toBeUndefined();
  });

  test("bounded: a flood of tickets never grows the book past its limit", () => {
    const book = createTicketBook({ limit: 100, now: Date.now });
    for (let i = 0; i < 1_000; i++) book.issue(BOOTSTRAP_PRINCIPAL, "/ws");
    expect(book.size).toBeLessThanOrEqual(100);
  });
});

describe("on the wire", () => {
  const ask = (http: string, token?: string) =>
    fetch(`${http}/auth/ws-ticket`, { method: "POST", headers: token === undefined ? {} : { Authorization: `Bearer ${token}` } });

  test("POST /auth/ws-ticket → ?ticket= opens /ws once; the ticket is redacted in logs", async () => {
    await using app = await startTestApp();
    const response = await ask(app.http, app.token);
    expect(response.status).toBe(200);
    const body = (await response.json()) as { ticket: string; expires_in: number; path: string };
    trackSecret(body.ticket);
    expect(body).toMatchObject({ expires_in: 30, path: "/ws" });
    const probe = new WsProbe(`${app.ws}/ws?ticket=${body.ticket}`);
    expect(await probe.nextMessage(0)).toBe("✅ WebSocket connected with valid token");
    probe.socket.close();
    const again = new WsProbe(`${app.ws}/ws?ticket=${body.ticket}`);
    expect(await again.opened).toBe(false);
    expect(app.lines.some((line) => line.includes("/ws?ticket=REDACTED"))).toBe(true);
  });

  test("a ticket minted before its key was revoked does not open a socket after the revocation", async () => {
    await using app = await startTestApp();
    const key = await insertApiKey(app.store, { name: "tablet", scopes: ["ws:connect"] });
    await app.app.keyring.refresh();
    const { ticket } = (await (await ask(app.http, key.token)).json()) as { ticket: string };
    trackSecret(ticket);
    await app.store.revokeKey(key.id, Date.now());
    await app.app.keyring.refresh();
    const response = await rawRequest(
      app.app.listener.server.port!,
      `GET /ws?ticket=${ticket} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    expect(response.status).toBe(401);
    expect(JSON.parse(response.body)).toMatchObject({ code: "invalid_token", description: "The token has been revoked" });
  });

  test("asking without a valid token is an explained HTTP refusal, not a 1006", async () => {
    await using app = await startTestApp();
    const missing = await ask(app.http);
    expect(missing.status).toBe(401);
    expect(await missing.json()).toMatchObject({ code: "missing_token" });
    const key = await insertApiKey(app.store, { name: "reader", scopes: ["data:read"] });
    await app.app.keyring.refresh();
    const scope = await ask(app.http, key.token);
    expect(scope.status).toBe(403);
    expect(scope.headers.get("www-authenticate")).toContain('scope="ws:connect"');
  });

  test.each([
    ["an unknown ticket", (_ticket: string) => `/ws?ticket=${"A".repeat(43)}`, 401, "invalid_token"],
    ["a ticket and a token together", (ticket: string) => `/ws?ticket=${ticket}&token=${"B".repeat(43)}`, 400, "invalid_request"],
    ["two tickets", (ticket: string) => `/ws?ticket=${ticket}&ticket=${ticket}`, 400, "invalid_request"],
  ])("%s → %d", async (_name, target, status, code) => {
    await using app = await startTestApp();
    const { ticket } = (await (await ask(app.http, app.token)).json()) as { ticket: string };
    trackSecret(ticket);
    const response = await rawRequest(
      app.app.listener.server.port!,
      `GET ${target(ticket)} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    expect(response.status).toBe(status);
    expect((JSON.parse(response.body) as { code: string }).code).toBe(code);
  });
});

test("no ticket or token reached any output", () => {
  expectNoSecretsInOutput();
});
