/**
 * Property-based fuzzing (fast-check) of the built-in reverse proxy's edges: the routes file's
 * parser on any text, the headers a service is told on any request, and the whole path through the
 * real gate to a real recording upstream (tests/support/upstream.ts) on loopback. Runs are bounded
 * so each test stays well under 20 s on a slow machine.
 *
 * Generated values never hold a secret: requests are described with placeholders and the key is put
 * in only when one is sent, so fast-check's own report of a counterexample is safe to print; the
 * property's failure message is redacted before it is thrown.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeSubprotocolToken } from "../../auth/authn/credentials.ts";
import { parseRoutesFile } from "../../auth/config/routes-file.ts";
import type { Principal } from "../../auth/core/principal.ts";
import { FOREIGN_IDENTITY_HEADERS, setIdentityHeaders } from "../../auth/forward/identity.ts";
import { upstreamRequestHeaders, type ForwardingFacts } from "../../auth/proxy/forwarding.ts";
import { startTestApp, type TestApp } from "../support/harness.ts";
import { insertApiKey } from "../support/keys.ts";
import { expectNoSecretsInOutput } from "../support/secrets.ts";
import { startUpstream, type Received } from "../support/upstream.ts";

/** Every character of `text` upper- or lower-cased by the flags (cycled). */
function recase(text: string, flags: readonly boolean[]): string {
  if (flags.length === 0) return text;
  return [...text].map((char, i) => (flags[i % flags.length] ? char.toUpperCase() : char.toLowerCase())).join("");
}

// Header values a client library will send: visible ASCII, space and tab.
const headerChar = fc.integer({ min: 0x20, max: 0x7e }).map((code) => String.fromCharCode(code));
const headerValue = fc.string({ unit: fc.oneof(headerChar, fc.constant("\t")), maxLength: 40 });
const TOKEN_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,20}$/;
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

/** Names the gate treats specially toward a service, and some it does not. */
const SPECIAL_NAMES = [
  "x-auth-token",
  "x-auth-user",
  "x-auth-id",
  "x-auth-scopes",
  "x-auth-kind",
  "x-auth-role",
  "x-auth-",
  "remote-user",
  "remote-groups",
  "remote-email",
  "x-remote-user",
  "x-webauth-user",
  "x-forwarded-user",
  "x-forwarded-email",
  "x-forwarded-access-token",
  "authorization",
  "proxy-authorization",
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-forwarded-host",
  "x-forwarded-uri",
  "x-original-uri",
  "x-real-ip",
  "forwarded",
  "cookie",
  "accept",
  "x-request-id",
  "x-api-key",
];
const HOP_NAMES = ["connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "transfer-encoding", "host", "expect"];
const headerName = (pool: readonly string[]) =>
  fc.oneof(
    {
      weight: 4,
      arbitrary: fc.tuple(fc.constantFrom(...pool), fc.array(fc.boolean(), { maxLength: 6 })).map(([name, flags]) => recase(name, flags)),
    },
    { weight: 1, arbitrary: fc.stringMatching(TOKEN_NAME) },
  );
/** A Connection header naming some of the pool (what it names is hop-by-hop for this message). */
const connectionValue = (pool: readonly string[]) =>
  fc
    .array(headerName(pool), { minLength: 1, maxLength: 4 })
    .chain((names) => fc.constantFrom(", ", ",", " ,  ").map((separator) => names.join(separator)));

/** Builds Headers from generated pairs, skipping any pair `Headers` itself refuses. */
function toHeaders(pairs: ReadonlyArray<readonly [string, string]>): Headers {
  const headers = new Headers();
  for (const [name, value] of pairs) {
    try {
      headers.append(name, value);
    } catch {
      // not a valid header: no client could send it
    }
  }
  return headers;
}

describe("parseRoutesFile on any text", () => {
  const FILES = ["routes.toml", "/etc/tokengate/routes.toml", "./my routes (1).toml", "C:\\odd\\路由.toml"];
  const fileName = fc.constantFrom(...FILES);

  function expectWellFormed(text: string, file: string): void {
    let result: ReturnType<typeof parseRoutesFile>;
    try {
      result = parseRoutesFile(text, file);
    } catch (error) {
      throw new Error(`parseRoutesFile threw ${String(error)} on ${JSON.stringify(text.slice(0, 300))}`);
    }
    if (result.ok) {
      expect(Array.isArray(result.routes)).toBe(true);
      return;
    }
    expect(result.problems.length).toBeGreaterThan(0);
    for (const problem of result.problems) {
      expect(problem.variable).toBe("ROUTES_FILE");
      expect(typeof problem.message).toBe("string");
      if (!problem.message.startsWith(file)) throw new Error(`problem ${JSON.stringify(problem.message)} does not start with ${file}`);
    }
  }

  test("arbitrary strings: never throws; routes, or problems that each start with the file name", () => {
    const text = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.string({ unit: "binary", maxLength: 200 }),
      fc.string({ unit: fc.constantFrom(..."[]{}=\"'.,#\n\r\t\\ routematchnameupstream0123456789:/_-*"), maxLength: 300 }),
    );
    fc.assert(
      fc.property(text, fileName, (body, file) => expectWellFormed(body, file)),
      { numRuns: 3_000 },
    );
  }, 20_000);

  // TOML values of every kind, plausible and not, for any field.
  const tomlString = fc.oneof(
    fc.string({ unit: "binary", maxLength: 30 }).map((text) => JSON.stringify(text)),
    fc.string({ maxLength: 30 }).map((text) => `'${text.replace(/['\n\r]/g, "")}'`),
    fc.string({ maxLength: 30 }).map((text) => `"""${text.replace(/"/g, "").replace(/\\/g, "\\\\")}"""`),
  );
  const plausible = fc
    .constantFrom(
      "grafana",
      "camera",
      "Grafana",
      "",
      "/grafana/",
      "/",
      "/auth/",
      "/ws",
      "/a",
      "/x y/",
      "grafana/",
      "cam.local",
      "*.local",
      "CAM.local",
      "http://127.0.0.1:3000",
      "https://[::1]:8443/base/",
      "ftp://127.0.0.1",
      "http://user:pass@127.0.0.1",
      "http://127.0.0.1/?q=1",
      "http://127.0.0.1/#x",
      "camera:view",
      "*",
      "a b",
      "grafana camera",
    )
    .map((text) => JSON.stringify(text));
  const scalar = fc.oneof(
    tomlString,
    plausible,
    fc.integer().map(String),
    fc.constantFrom("0", "-1", "3600", "3601", "9223372036854775807", "9223372036854775808", "0x1F", "1_000", "1e3", "nan", "-inf", "1.5"),
    fc.double().map((value) => (Number.isNaN(value) ? "nan" : value === Infinity ? "inf" : value === -Infinity ? "-inf" : String(value))),
    fc.boolean().map(String),
    fc.constantFrom("1979-05-27T07:32:00Z", "1979-05-27", "07:32:00"),
  );
  const value: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
    value: fc.oneof(
      { depthSize: "small", withCrossShrink: true },
      scalar,
      fc.array(tie("value"), { maxLength: 3 }).map((items) => `[${items.join(", ")}]`),
      fc
        .uniqueArray(fc.tuple(fc.constantFrom("path_prefix", "host", "name", "x", '"quoted key"'), tie("value")), {
          selector: ([key]) => key,
          maxLength: 3,
        })
        .map((pairs) => `{ ${pairs.map(([key, item]) => `${key} = ${item}`).join(", ")} }`),
    ),
  })).value;
  /** Per field: values it may hold, and values near them that it may not (so documents get past TOML into validation). */
  const FIELD_VALUES: Record<string, { readonly valid: fc.Arbitrary<string>; readonly invalid: fc.Arbitrary<string> }> = {
    name: {
      valid: fc
        .oneof(fc.constantFrom("grafana", "camera", "cam-1"), fc.stringMatching(/^[a-z][a-z0-9_-]{0,6}$/))
        .map((text) => JSON.stringify(text)),
      invalid: fc.constantFrom('"Grafana"', '""', '"1st"', `"${"a".repeat(41)}"`, '"a b"'),
    },
    match: {
      valid: fc.constantFrom(
        '{ path_prefix = "/grafana/" }',
        '{ path_prefix = "/camera/" }',
        '{ host = "cam.local" }',
        '{ host = "cam.local", path_prefix = "/x/" }',
        '{ path_prefix = "/w" }',
        '{ path_prefix = "/a" }',
      ),
      invalid: fc.constantFrom(
        '{ path_prefix = "/" }',
        '{ path_prefix = "/auth/" }',
        '{ host = "*.local" }',
        "{}",
        '{ path = "/grafana/" }',
      ),
    },
    "match.path_prefix": {
      valid: fc.constantFrom('"/grafana/"', '"/b"'),
      invalid: fc.constantFrom('"/a b/"', '"/.well-known/x"', '"grafana"'),
    },
    "match.host": { valid: fc.constantFrom('"cam.local"', '"grafana.lan"'), invalid: fc.constantFrom('"cam.local:8080"', '"*.cam.local"') },
    upstream: {
      valid: fc.constantFrom('"http://127.0.0.1:3000"', '"https://cam.local/base/"'),
      invalid: fc.constantFrom('"ftp://127.0.0.1"', '"http://u:p@127.0.0.1"', '"http://127.0.0.1/?q"', '"not a url"'),
    },
    scope: { valid: fc.constantFrom('"grafana"', '"camera:view"'), invalid: fc.constantFrom('"*"', '"a b"', '""') },
    strip_prefix: { valid: fc.constantFrom("true", "false"), invalid: fc.constant('"yes"') },
    websocket: { valid: fc.constantFrom("true", "false"), invalid: fc.constant("1") },
    identity_headers: { valid: fc.constantFrom("true", "false"), invalid: fc.constant('"false"') },
    timeout_seconds: { valid: fc.constantFrom("1", "30", "3600"), invalid: fc.constantFrom("0", "3601", "1.5", '"30"') },
    max_body_bytes: { valid: fc.constantFrom("0", "1024", "1099511627776"), invalid: fc.constantFrom("1099511627777", "-1") },
    extra: { valid: fc.constant("1"), invalid: fc.constant('"x"') },
  };
  const FIELDS = Object.keys(FIELD_VALUES);
  const REQUIRED = ["name", "match", "upstream", "scope"];
  const fieldLine = (field: string) =>
    fc
      .oneof(
        { weight: field === "extra" ? 0 : 30, arbitrary: FIELD_VALUES[field]!.valid },
        { weight: 1, arbitrary: FIELD_VALUES[field]!.invalid },
        { weight: 1, arbitrary: value },
      )
      .map((item) => `${field} = ${item}`);
  /** A route's lines: usually the four required fields and some others, sometimes any fields at all (each once: TOML forbids repeats). */
  const route = fc
    .oneof(
      {
        weight: 3,
        arbitrary: fc
          .subarray(FIELDS.filter((field) => !field.startsWith("match") && !REQUIRED.includes(field)))
          .map((rest) => [...REQUIRED, ...rest]),
      },
      { weight: 1, arbitrary: fc.shuffledSubarray(FIELDS) },
    )
    .chain((fields) => fc.tuple(...fields.map(fieldLine)))
    .map((lines) => lines.join("\n"));
  const header = fc.oneof(
    { weight: 6, arbitrary: fc.constant("[[route]]") },
    { weight: 1, arbitrary: fc.constantFrom("[route]", "[[routes]]", "[route.match]", "[[route.match]]", "") },
  );
  const deep = fc
    .tuple(fc.integer({ min: 1, max: 20_000 }), fc.constantFrom(["[", "]"], ["{ a = ", " }"]))
    .map(([depth, [open, close]]) => `[[route]]\nname = ${open.repeat(depth)}1${close.repeat(depth)}\n`);
  const document = fc.oneof(
    {
      weight: 8,
      arbitrary: fc.array(fc.tuple(header, route), { maxLength: 5 }).map((sections) => sections.map(([h, r]) => `${h}\n${r}\n`).join("")),
    },
    { weight: 1, arbitrary: deep },
  );
  /** Breaks a document a little: a character inserted, dropped or replaced. */
  const mutated = fc
    .tuple(
      document,
      fc.array(fc.tuple(fc.nat(), fc.constantFrom("insert", "drop", "replace"), fc.string({ minLength: 1, maxLength: 1 })), {
        maxLength: 3,
      }),
    )
    .map(([text, edits]) =>
      edits.reduce((doc, [at, edit, char]) => {
        const i = doc.length === 0 ? 0 : at % doc.length;
        if (edit === "insert") return doc.slice(0, i) + char + doc.slice(i);
        if (edit === "drop") return doc.slice(0, i) + doc.slice(i + 1);
        return doc.slice(0, i) + char + doc.slice(i + 1);
      }, text),
    );

  test("TOML-ish documents of route-like records with random field values: never throws, file-named problems", () => {
    fc.assert(
      fc.property(fc.oneof({ weight: 3, arbitrary: document }, { weight: 1, arbitrary: mutated }), fileName, (text, file) =>
        expectWellFormed(text, file),
      ),
      { numRuns: 1_500 },
    );
  }, 20_000);

  test("valid records are accepted as written, defaults filled in", () => {
    const validRoute = fc.record({
      name: fc.stringMatching(/^[a-z][a-z0-9_-]{0,30}$/),
      upstream: fc.constantFrom("http://127.0.0.1:3000", "https://cam.local", "http://[::1]:8080/base/"),
      scope: fc.stringMatching(/^[a-z][a-z0-9]{0,10}(:[a-z]{1,8})?$/),
      strip_prefix: fc.option(fc.boolean(), { nil: undefined }),
      timeout_seconds: fc.option(fc.integer({ min: 1, max: 3600 }), { nil: undefined }),
    });
    fc.assert(
      fc.property(fc.uniqueArray(validRoute, { selector: (entry) => entry.name, maxLength: 5 }), fileName, (entries, file) => {
        const text = entries
          .map((entry, i) => {
            const lines = [
              "[[route]]",
              `name = ${JSON.stringify(entry.name)}`,
              `match = { path_prefix = "/svc${i}/" }`,
              `upstream = ${JSON.stringify(entry.upstream)}`,
              `scope = ${JSON.stringify(entry.scope)}`,
            ];
            if (entry.strip_prefix !== undefined) lines.push(`strip_prefix = ${entry.strip_prefix}`);
            if (entry.timeout_seconds !== undefined) lines.push(`timeout_seconds = ${entry.timeout_seconds}`);
            return lines.join("\n");
          })
          .join("\n\n");
        const parsed = parseRoutesFile(text, file);
        if (!parsed.ok) throw new Error(parsed.problems.map((problem) => problem.message).join("; "));
        expect(parsed.routes).toEqual(
          entries.map((entry, i) => ({
            name: entry.name,
            match: { path_prefix: `/svc${i}/` },
            upstream: entry.upstream,
            scope: entry.scope,
            strip_prefix: entry.strip_prefix ?? false,
            websocket: false,
            identity_headers: true,
            timeout_seconds: entry.timeout_seconds ?? 30,
            max_body_bytes: 1024 ** 4,
          })),
        );
      }),
      { numRuns: 500 },
    );
  }, 20_000);
});

describe("upstreamRequestHeaders on any header set", () => {
  /** A field value as it travels (RFC 9110 §5.5: no leading or trailing whitespace; a repeat joined with ", " may end in one). */
  const fieldValue = (value: string | null) => value?.trim() ?? null;
  const HOP_BY_HOP = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
  ];
  const PER_CONNECTION = [
    "host",
    "expect",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
    "sec-websocket-accept",
  ];
  const FORWARDING = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-uri",
    "x-forwarded-method",
    "x-original-uri",
    "x-original-method",
    "x-real-ip",
    "forwarded",
  ];
  /** What the gate itself writes toward the service, whatever the client sent. */
  const GATE_SET = new Set([
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
    "x-auth-user",
    "x-auth-id",
    "x-auth-scopes",
    "x-auth-kind",
  ]);
  const pool = [...SPECIAL_NAMES, ...HOP_NAMES, "sec-websocket-protocol", "sec-websocket-key", "x-forwarded-port"];

  const pair = fc.oneof(
    { weight: 6, arbitrary: fc.tuple(headerName(pool), headerValue) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom("Connection", "connection", "CONNECTION"), connectionValue(pool)) },
    {
      weight: 1,
      arbitrary: fc.tuple(
        fc.constantFrom("Authorization", "authorization"),
        fc.constantFrom("Bearer abc", "Basic Zm9vOmJhcg==", "Token xyz", ""),
      ),
    },
  );
  const principal: fc.Arbitrary<Principal> = fc.record({
    id: fc.oneof(fc.stringMatching(/^[0-9a-f]{12}$/), fc.string({ maxLength: 12 })),
    kind: fc.constantFrom("bootstrap", "key", "user"),
    name: fc.string({ unit: "grapheme", maxLength: 20 }),
    scopes: fc.array(fc.stringMatching(/^[a-z]{1,8}$/), { maxLength: 3 }),
    expiresAt: fc.constant(null),
    roles: fc.constant([]),
    session: fc.constant(null),
    tokenId: fc.constant(null),
  });
  const facts: fc.Arbitrary<ForwardingFacts> = fc.record({
    peer: fc.constantFrom("127.0.0.1", "192.168.1.20", "::1", "fe80::1", "2001:db8::7", "::ffff:10.0.0.1"),
    peerTrusted: fc.boolean(),
    proto: fc.constantFrom("http", "https"),
    host: fc.option(fc.oneof(fc.constantFrom("gate.lan", "gate.lan:8000", "[::1]:8000"), headerValue), { nil: null }),
    authorizationIsOurs: fc.boolean(),
    identity: fc.option(principal, { nil: undefined }),
  });

  test("never the gate's credential, a client's identity, or a hop-by-hop header; Authorization kept exactly when it is the service's", () => {
    fc.assert(
      fc.property(fc.array(pair, { maxLength: 12 }), facts, (pairs, given) => {
        const incoming = toHeaders(pairs);
        const out = upstreamRequestHeaders(incoming, given);
        const outNames = [...out.keys()];
        const named = new Set((incoming.get("connection") ?? "").split(",").map((name) => name.trim().toLowerCase()));

        expect(out.has("x-auth-token")).toBe(false);
        for (const name of FOREIGN_IDENTITY_HEADERS) expect(out.has(name)).toBe(false);
        // The x-auth-* headers are exactly the gate's own: none when it names nobody.
        const identity = outNames.filter((name) => name.startsWith("x-auth-")).map((name) => [name, out.get(name)]);
        const expected = given.identity === undefined ? [] : [...setIdentityHeaders(new Headers(), given.identity)];
        expect(Object.fromEntries(identity)).toEqual(Object.fromEntries(expected));

        if (given.authorizationIsOurs) expect(out.has("authorization")).toBe(false);
        else if (!named.has("authorization")) expect(fieldValue(out.get("authorization"))).toBe(fieldValue(incoming.get("authorization")));

        for (const name of [...HOP_BY_HOP, ...PER_CONNECTION, ...FORWARDING]) if (!GATE_SET.has(name)) expect(out.has(name)).toBe(false);
        // A Connection header may list anything; only valid names can be headers at all.
        for (const name of named) if (HEADER_NAME.test(name) && !GATE_SET.has(name)) expect(out.has(name)).toBe(false);

        // Forwarding is the gate's account: the client's chain only from a trusted peer, the peer last.
        const chain = given.peerTrusted ? incoming.get("x-forwarded-for") : null;
        expect(out.get("x-forwarded-for")).toBe(fieldValue(chain === null ? given.peer : `${chain}, ${given.peer}`));
        expect(out.get("x-forwarded-proto")).toBe(
          fieldValue((given.peerTrusted ? incoming.get("x-forwarded-proto") : null) ?? given.proto),
        );

        // Everything else reaches the service untouched.
        const special = new Set([...HOP_BY_HOP, ...PER_CONNECTION, ...FORWARDING, ...FOREIGN_IDENTITY_HEADERS, ...named, "authorization"]);
        for (const [name, value] of incoming) {
          // CGI reads `x_auth_user` as `x-auth-user`: such a spelling is judged as the dashed name. The
          // Referer is rewritten (without ?token=).
          const dashed = name.replaceAll("_", "-");
          if (special.has(name) || special.has(dashed) || dashed.startsWith("x-auth-") || name === "referer") continue;
          expect(fieldValue(out.get(name))).toBe(fieldValue(value));
        }
      }),
      { numRuns: 3_000 },
    );
  }, 20_000);
});

describe("through the real built-in proxy", () => {
  const upstream = startUpstream();
  const dir = mkdtempSync(join(tmpdir(), "tokengate-proxy-fuzz-"));
  const routesFile = join(dir, "routes.toml");
  writeFileSync(
    routesFile,
    `[[route]]\nname = "svc"\nmatch = { path_prefix = "/svc/" }\nupstream = "${upstream.url}/base"\nscope = "svc"\nstrip_prefix = true\nwebsocket = false\n`,
  );
  let app: TestApp;
  let key: { id: string; secret: string; token: string };
  let run = 0;

  beforeAll(async () => {
    app = await startTestApp({ ROUTES_FILE: routesFile });
    key = await insertApiKey(app.store, { name: "fuzz client", scopes: ["svc"] });
    await app.app.keyring.refresh();
  });
  afterAll(async () => {
    await app[Symbol.asyncDispose]();
    upstream[Symbol.dispose]();
    rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Where the key goes: the gate's own places; and places a plain HTTP request does not
   * authenticate with but which hold the gate's key all the same, so they must not reach the
   * service either (a `tokengate.bearer.` subprotocol entry, Authorization with another scheme or
   * as a Basic password).
   */
  type Form = "x-auth-token" | "bearer" | "bearer-lower" | "query" | "subprotocol" | "other-scheme" | "basic";
  const AUTHENTICATING: readonly Form[] = ["x-auth-token", "bearer", "bearer-lower", "query"];
  /** `?token=` as sent: exact, percent-encoded (still `token`), or misspelt (the gate must refuse, not forward). */
  const QUERY_SPELLINGS = [
    "token",
    "token",
    "%74oken",
    "tok%65n",
    "%74%6F%6B%65%6E",
    "TOKEN",
    "Token",
    "%3Ftoken",
    "?token",
    "to-ken",
    "token%20",
    "to+ken",
    "tok%2Den",
  ];
  /** Parameters of the service's own, token-like or not, with harmless values. */
  const QUERY_NAMES = [
    "q",
    "page",
    "token",
    "Token",
    "%74oken",
    "access_token",
    "api_key",
    "tokens",
    "x-token",
    "token_type",
    "auth",
    "code",
    "a%20b",
    "%E2%9C%93",
    "",
  ];
  const queryChar = fc.constantFrom(..."abcXYZ019-._~!$'()*+,;:@/?%=", "%41", "%3D", "%26", "%E2%9C%93", " ", "é");
  const queryPair = fc
    .tuple(
      fc.oneof(fc.constantFrom(...QUERY_NAMES), fc.string({ unit: queryChar, maxLength: 8 })),
      fc.string({ unit: queryChar, maxLength: 12 }),
      fc.boolean(),
    )
    .map(([name, value, bare]) => (bare ? name : `${name}=${value}`));

  /** A request described without the key (a placeholder), so a counterexample can be printed. */
  interface Sent {
    readonly forms: readonly Form[];
    readonly spelling: string;
    readonly encodeValue: boolean;
    readonly query: readonly string[];
    readonly at: number;
    readonly headers: ReadonlyArray<readonly [string, string]>;
    readonly method: string;
  }
  /** Framing a client library owns: set by hand they make another request, not another header. */
  const FRAMING = new Set(["host", "content-length", "transfer-encoding", "expect", "upgrade", "te", "trailer"]);
  const extraPool = [...SPECIAL_NAMES, "origin", "access-control-request-method", "sec-websocket-protocol", "keep-alive"];
  const extraHeaders = fc.array(
    fc.oneof(
      { weight: 5, arbitrary: fc.tuple(headerName(extraPool), headerValue) },
      {
        weight: 1,
        arbitrary: fc.tuple(
          fc.constantFrom("Connection", "connection"),
          connectionValue(extraPool).map((list) => `keep-alive, ${list}`),
        ),
      },
    ),
    { maxLength: 6 },
  );
  const requestWith = (forms: fc.Arbitrary<Form[]>): fc.Arbitrary<Sent> =>
    fc.record({
      forms,
      spelling: fc.constantFrom(...QUERY_SPELLINGS),
      encodeValue: fc.boolean(),
      query: fc.array(queryPair, { maxLength: 5 }),
      at: fc.nat(),
      headers: extraHeaders,
      method: fc.constantFrom("GET", "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"),
    });

  const basicOf = (token: string) => Buffer.from(`fuzz:${token}`).toString("base64");
  const percentEncodeAll = (text: string) =>
    [...Buffer.from(text)].map((byte) => `%${byte.toString(16).toUpperCase().padStart(2, "0")}`).join("");

  /** The request to send for a description, with the key put in. */
  function build(request: Sent, path: string): { url: string; init: RequestInit } {
    const headers = new Headers();
    for (const [name, value] of request.headers) {
      if (FRAMING.has(name.toLowerCase())) continue;
      try {
        headers.append(name, value);
      } catch {
        // not a header a client could send
      }
    }
    if (request.forms.includes("x-auth-token")) headers.append("X-Auth-Token", key.token);
    if (request.forms.includes("bearer")) headers.append("Authorization", `Bearer ${key.token}`);
    if (request.forms.includes("bearer-lower")) headers.append("Authorization", `bearer ${key.token}`);
    if (request.forms.includes("subprotocol")) headers.append("Sec-WebSocket-Protocol", `tokengate, ${encodeSubprotocolToken(key.token)}`);
    if (request.forms.includes("other-scheme")) headers.append("Authorization", `Token ${key.token}`);
    if (request.forms.includes("basic")) headers.append("Authorization", `Basic ${basicOf(key.token)}`);
    const query = [...request.query];
    if (request.forms.includes("query")) {
      const value = request.encodeValue ? percentEncodeAll(key.token) : key.token;
      query.splice(request.at % (query.length + 1), 0, `${request.spelling}=${value}`);
    }
    const search = query.length === 0 ? "" : `?${query.join("&")}`;
    const body = ["GET", "HEAD", "OPTIONS"].includes(request.method) ? null : "payload";
    return { url: `${app.http}/svc/${path}/page${search}`, init: { method: request.method, headers, body } };
  }

  /** Whether a text holds the key: as sent, its secret half, percent-encoded, decoded, or as a subprotocol entry. */
  function holdsKey(text: string): boolean {
    let decoded = text;
    try {
      decoded = decodeURIComponent(text.replaceAll("+", " "));
    } catch {
      // keep the text as it is
    }
    const forms = [
      key.token,
      key.secret,
      encodeURIComponent(key.token),
      encodeSubprotocolToken(key.token).slice("tokengate.bearer.".length),
      basicOf(key.token),
    ];
    return [text, decoded].some((seen) => forms.some((form) => seen.includes(form)));
  }

  /** A text for a failure message: the key's known forms replaced, and withheld whole if it still holds one. */
  function redact(text: string): string {
    const known = [
      key.token,
      encodeURIComponent(key.token),
      percentEncodeAll(key.token),
      key.secret,
      encodeSubprotocolToken(key.token),
      basicOf(key.token),
    ];
    const replaced = known.reduce((out, form) => out.replaceAll(form, "<KEY>"), text);
    return holdsKey(replaced) ? "(withheld: it holds the key in another form)" : replaced;
  }

  /** Everything wrong with one exchange: the gate's status and what the service received for it (empty when all is well). */
  function violations(status: number, got: readonly Received[]): string[] {
    const found: string[] = [];
    if (status >= 500) found.push(`the gate answered ${status}`);
    if (status !== 200 && got.length > 0) found.push(`refused with ${status}, yet the service was asked`);
    if (status === 200 && got.length !== 1) found.push(`answered 200 after ${got.length} requests to the service`);
    for (const entry of got) {
      if (holdsKey(entry.target)) found.push(`the key reached the service in the URL ${redact(entry.target)}`);
      for (const [name, value] of Object.entries(entry.headers)) {
        if (holdsKey(value)) found.push(`the key reached the service in ${name}: ${redact(value)}`);
        if (FOREIGN_IDENTITY_HEADERS.has(name)) found.push(`a client's ${name} reached the service`);
      }
      const identity = Object.fromEntries(Object.entries(entry.headers).filter(([name]) => name.startsWith("x-auth-")));
      const ours = { "x-auth-user": "fuzz client", "x-auth-id": key.id, "x-auth-scopes": "svc", "x-auth-kind": "key" };
      if (!Bun.deepEquals(identity, ours)) found.push(`identity headers ${redact(JSON.stringify(identity))}`);
    }
    return found;
  }

  /** Sends one described request; the status it got, after checking what the service received. */
  async function exchange(request: Sent): Promise<number> {
    run += 1;
    const path = `run-${run}`;
    const { url, init } = build(request, path);
    const response = await fetch(url, init);
    await response.arrayBuffer();
    const got = upstream.received.filter((entry) => entry.target.startsWith(`/base/${path}/`));
    const found = violations(response.status, got);
    if (found.length > 0) throw new Error(found.join("\n"));
    return response.status;
  }

  test("the key in one of the gate's places, random headers and queries: never 5xx, the service never gets the key or a client's identity", async () => {
    const statuses: number[] = [];
    await fc.assert(
      fc.asyncProperty(requestWith(fc.constantFrom(...AUTHENTICATING).map((form) => [form])), async (request) => {
        statuses.push(await exchange(request));
      }),
      { numRuns: 400 },
    );
    // Most runs must have got through to the service, or the property proved little.
    expect(statuses.filter((status) => status === 200).length).toBeGreaterThan(150);
    expect((await fetch(`${app.http}/healthz`)).status).toBe(200);
  }, 20_000);

  test("the key in several of the gate's places at once: never 5xx, the service never gets the key or a client's identity", async () => {
    const forms = fc.uniqueArray(fc.constantFrom<Form>(...AUTHENTICATING, "subprotocol", "other-scheme", "basic"), {
      minLength: 2,
      maxLength: 3,
    });
    await fc.assert(
      fc.asyncProperty(requestWith(forms), async (request) => {
        await exchange(request);
      }),
      { numRuns: 300 },
    );
  }, 20_000);

  // Plain cases of the property above: the same key in one of the gate's places and in Authorization
  // (the first two were its first counterexamples; the last two, the key as a Basic password in an
  // Authorization field that holds more than one value, still reach the service).
  test.each([
    ["X-Auth-Token", "Bearer", ["x-auth-token", "bearer"], []],
    ["?token=", "Bearer", ["query", "bearer"], []],
    ["X-Auth-Token", "Token (another scheme)", ["x-auth-token", "other-scheme"], []],
    ["?token=", "Basic (as the password)", ["query", "basic"], []],
    ["X-Auth-Token", "Basic (as the password) after an empty Authorization line", ["x-auth-token", "basic"], [["Authorization", ""]]],
    [
      "?token=",
      "Basic (as the password) after the service's own Bearer",
      ["query", "basic"],
      [["Authorization", "Bearer service-own-token"]],
    ],
  ] as const)(
    "the same key in %s and in Authorization: %s: Authorization does not reach the service",
    async (_place, _scheme, forms, headers) => {
      const status = await exchange({ forms, spelling: "token", encodeValue: false, query: [], at: 0, headers, method: "GET" });
      expect(status).toBe(200);
    },
  );
});

test("no secret reached any output", () => {
  expectNoSecretsInOutput();
});
