/**
 * JWT access tokens: the RFC vector through jose, round trips for both algorithms, and the attack
 * cases verification must refuse. Every token is made by jose; nothing is hand-assembled except
 * the deliberately broken ones.
 */
import { describe, expect, test } from "bun:test";
import {
  compactVerify,
  createLocalJWKSet,
  exportJWK,
  generateKeyPair,
  generateSecret,
  importJWK,
  jwtVerify,
  SignJWT,
  UnsecuredJWT,
  type JWK,
} from "jose";
import { EXPIRED_TOKEN, GateError, INVALID_TOKEN } from "../../auth/core/errors.ts";
import {
  generateSigningKey,
  importKeySet,
  issueAccessToken,
  looksLikeJwt,
  verifyAccessToken,
  type KeySet,
} from "../../auth/secrets/jwt.ts";

const settings = { issuer: "tokengate", audience: "tokengate", ttl: 900, clockTolerance: 5 };
const claims = { sub: "user:alice", scope: ["data:read"], roles: ["viewer"], clientId: "tokengate" };
const NOW = Date.UTC(2026, 10, 23, 12, 0, 0);

async function keySet(alg: "EdDSA" | "HS256" = "EdDSA"): Promise<KeySet> {
  return (await importKeySet([await generateSigningKey(alg, NOW)], alg, NOW))!;
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

describe("RFC 7515 §A.1 / RFC 7519 §3.1 example", () => {
  // The JWS from RFC 7515 Appendix A.1 (the same token RFC 7519 §3.1 walks through).
  const rfcJws =
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9" +
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ" +
    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
  const rfcKey: JWK = { kty: "oct", k: "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow" };

  test("jose verifies the RFC's HS256 signature and payload", async () => {
    const { payload, protectedHeader } = await compactVerify(rfcJws, await importJWK(rfcKey, "HS256"));
    expect(protectedHeader.alg).toBe("HS256");
    expect(JSON.parse(new TextDecoder().decode(payload))).toEqual({ iss: "joe", exp: 1300819380, "http://example.com/is_root": true });
  });

  test("…but it is not an access token here: typ JWT, no kid, expired, foreign issuer", async () => {
    const keys = await keySet("HS256");
    expect(await verifyAccessToken(rfcJws, keys, settings, NOW)).toBe(INVALID_TOKEN);
  });
});

describe("round trip", () => {
  test.each(["EdDSA", "HS256"] as const)("%s: issue, then verify with all claims", async (alg) => {
    const keys = await keySet(alg);
    const issued = await issueAccessToken(keys, settings, claims, NOW);
    expect(looksLikeJwt(issued.token)).toBe(true);
    const header = JSON.parse(Buffer.from(issued.token.split(".")[0]!, "base64url").toString()) as Record<string, string>;
    expect(header).toEqual({ alg, typ: "at+jwt", kid: keys.signing.kid });
    expect(await verifyAccessToken(issued.token, keys, settings, NOW + 1000)).toEqual({
      sub: "user:alice",
      scope: ["data:read"],
      roles: ["viewer"],
      clientId: "tokengate",
      jti: issued.jti,
      exp: Math.floor(NOW / 1000) + 900,
      sid: null,
    });
  });

  test("the JWKS publishes the EdDSA public key only, never a private or symmetric key", async () => {
    const ed = await keySet("EdDSA");
    expect(ed.jwks.keys).toHaveLength(1);
    expect(ed.jwks.keys[0]).toMatchObject({ kty: "OKP", crv: "Ed25519", kid: ed.signing.kid, alg: "EdDSA", use: "sig" });
    expect(ed.jwks.keys[0]).not.toHaveProperty("d");
    expect((await keySet("HS256")).jwks.keys).toEqual([]);
  });

  test("a retired key still verifies its tokens; the newest live key signs", async () => {
    const old = { ...(await generateSigningKey("EdDSA", NOW - 10_000)), retiredAt: NOW - 5_000 };
    const current = await generateSigningKey("EdDSA", NOW);
    const oldKeys = (await importKeySet([{ ...old, retiredAt: null }], "EdDSA", NOW))!;
    const both = (await importKeySet([old, current], "EdDSA", NOW))!;
    expect(both.signing.kid).toBe(current.kid);
    expect(both.jwks.keys.map((key) => key.kid).sort()).toEqual([old.kid, current.kid].sort());
    const fromOld = await issueAccessToken(oldKeys, settings, claims, NOW);
    expect(await verifyAccessToken(fromOld.token, both, settings, NOW)).not.toBeInstanceOf(GateError);
  });
});

// Keys are generated and imported with crypto.subtle (jose loads on first use); the stored JWKs
// must stay interchangeable with jose's in both directions.
describe("stored keys stay compatible with jose", () => {
  test.each(["EdDSA", "HS256"] as const)("%s: a key jose generated (as earlier releases stored it) signs and verifies", async (alg) => {
    const kid = `jose-${alg}`;
    const record =
      alg === "HS256"
        ? {
            kid,
            alg,
            privateJwk: JSON.stringify(await exportJWK(await generateSecret("HS256", { extractable: true }))),
            publicJwk: null,
            createdAt: NOW,
            retiredAt: null,
          }
        : await (async () => {
            const pair = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
            return {
              kid,
              alg,
              privateJwk: JSON.stringify(await exportJWK(pair.privateKey)),
              publicJwk: JSON.stringify(await exportJWK(pair.publicKey)),
              createdAt: NOW,
              retiredAt: null,
            };
          })();
    const keys = (await importKeySet([record], alg, NOW))!;
    const issued = await issueAccessToken(keys, settings, claims, NOW);
    expect(await verifyAccessToken(issued.token, keys, settings, NOW)).toMatchObject({ sub: "user:alice", jti: issued.jti });
    // And a token jose signs with the stored JWK is accepted by the imported set.
    const foreign = await new SignJWT({ scope: "data:read", client_id: "tokengate" })
      .setProtectedHeader({ alg, typ: "at+jwt", kid })
      .setIssuer(settings.issuer)
      .setAudience(settings.audience)
      .setSubject("user:alice")
      .setIssuedAt(NOW / 1000)
      .setExpirationTime(NOW / 1000 + 60)
      .setJti("j1")
      .sign(await importJWK(JSON.parse(record.privateJwk) as JWK, alg));
    expect(await verifyAccessToken(foreign, keys, settings, NOW)).toMatchObject({ sub: "user:alice", jti: "j1" });
  });

  test("a generated key is a bare JWK that jose imports, and the published JWKS verifies for outside clients", async () => {
    const record = await generateSigningKey("EdDSA", NOW);
    const privateJwk = JSON.parse(record.privateJwk) as JWK;
    expect(Object.keys(privateJwk).sort()).toEqual(["crv", "d", "kty", "x"]);
    expect(Object.keys(JSON.parse(record.publicJwk!) as JWK).sort()).toEqual(["crv", "kty", "x"]);
    await importJWK(privateJwk, "EdDSA");
    const hs = JSON.parse((await generateSigningKey("HS256", NOW)).privateJwk) as JWK;
    expect(Object.keys(hs).sort()).toEqual(["k", "kty"]);
    expect(Buffer.from(hs.k!, "base64url")).toHaveLength(32);

    const keys = (await importKeySet([record], "EdDSA", NOW))!;
    const issued = await issueAccessToken(keys, settings, claims, NOW);
    const { payload } = await jwtVerify(issued.token, createLocalJWKSet({ keys: [...keys.jwks.keys] }), {
      issuer: settings.issuer,
      audience: settings.audience,
      currentDate: new Date(NOW),
    });
    expect(payload.sub).toBe("user:alice");
  });

  test("imported keys cannot be exported again", async () => {
    const keys = await keySet("EdDSA");
    expect(keys.signing.key.extractable).toBe(false);
    await expect(crypto.subtle.exportKey("jwk", keys.signing.key)).rejects.toThrow();
  });
});

test("a key retired more than a day ago is dropped from verification and the JWKS", async () => {
  const { usableKeys, RETIRED_KEY_LIFETIME_MS } = await import("../../auth/secrets/jwt.ts");
  const current = await generateSigningKey("EdDSA", NOW);
  const recent = { ...(await generateSigningKey("EdDSA", NOW - 5_000)), retiredAt: NOW - 1_000 };
  const ancient = {
    ...(await generateSigningKey("EdDSA", NOW - 10 * RETIRED_KEY_LIFETIME_MS)),
    retiredAt: NOW - RETIRED_KEY_LIFETIME_MS - 1,
  };
  expect(usableKeys([current, recent, ancient], "EdDSA", NOW).map((key) => key.kid)).toEqual([current.kid, recent.kid]);
  const keys = (await importKeySet([current, recent, ancient], "EdDSA", NOW))!;
  expect(keys.jwks.keys.map((key) => key.kid).sort()).toEqual([current.kid, recent.kid].sort());
});

describe("attacks and malformed tokens are refused", () => {
  test("expiry honours the 5 s clock tolerance and then says 'expired'", async () => {
    const keys = await keySet();
    const issued = await issueAccessToken(keys, settings, claims, NOW);
    const exp = (Math.floor(NOW / 1000) + 900) * 1000;
    expect(await verifyAccessToken(issued.token, keys, settings, exp + 4_000)).not.toBeInstanceOf(GateError);
    expect(await verifyAccessToken(issued.token, keys, settings, exp + 6_000)).toBe(EXPIRED_TOKEN);
  });

  test.each<[string, (keys: KeySet, token: string) => Promise<string>]>([
    [
      "alg none",
      async () =>
        new UnsecuredJWT({ scope: "data:read", client_id: "x", jti: "j" })
          .setIssuer("tokengate")
          .setAudience("tokengate")
          .setSubject("user:alice")
          .setIssuedAt()
          .setExpirationTime("1h")
          .encode(),
    ],
    ["stripped signature", async (_keys, token) => token.split(".").slice(0, 2).join(".") + "."],
    [
      "tampered payload (scope widened)",
      async (_keys, token) => {
        const [header, payload, signature] = token.split(".");
        const claimsJson = JSON.parse(Buffer.from(payload!, "base64url").toString()) as Record<string, unknown>;
        return [header, b64({ ...claimsJson, scope: "*" }), signature].join(".");
      },
    ],
    [
      "HS256 signed with the public key (alg confusion)",
      async (keys) => {
        const x = Buffer.from((keys.jwks.keys[0] as { x: string }).x, "base64url");
        return new SignJWT({ scope: "*", client_id: "x" })
          .setProtectedHeader({ alg: "HS256", typ: "at+jwt", kid: keys.signing.kid })
          .setIssuer("tokengate")
          .setAudience("tokengate")
          .setSubject("user:alice")
          .setIssuedAt(NOW / 1000)
          .setExpirationTime(NOW / 1000 + 900)
          .setJti("j")
          .sign(x);
      },
    ],
    ["wrong typ (JWT)", async (keys) => sign(keys, { typ: "JWT" })],
    ["unknown kid", async (keys) => sign(keys, { kid: "not-a-key" })],
    ["no kid", async (keys) => sign(keys, { kid: undefined })],
    ["wrong audience", async (keys) => sign(keys, { aud: "someone-else" })],
    ["wrong issuer", async (keys) => sign(keys, { iss: "evil" })],
    ["non-numeric exp", async (keys) => sign(keys, { exp: "9999999999" })],
    ["non-numeric nbf", async (keys) => sign(keys, { nbf: "0" })],
    ["non-numeric iat", async (keys) => sign(keys, { iat: "yesterday" })],
    ["missing jti", async (keys) => sign(keys, { jti: undefined })],
    ["missing scope", async (keys) => sign(keys, { scope: undefined })],
    ["not yet valid (nbf in 10 min)", async (keys) => sign(keys, { nbf: NOW / 1000 + 600 })],
    ["signed by another EdDSA key", async () => (await issueAccessToken(await keySet(), settings, claims, NOW)).token],
    ["garbage", async () => "not.a.jwt"],
    [
      "signature re-spelled with different unused trailing bits (found by the fuzzer)",
      async (_keys, token) => {
        const [header, payload, signature] = token.split(".") as [string, string, string];
        // The last of 86 characters carries 2 significant bits; flip only the 4 unused ones.
        const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        const last = alphabet.indexOf(signature.at(-1)!);
        const respelled = alphabet[(last & 0b110000) | (~last & 0b001111)]!;
        expect(Buffer.from(signature.slice(0, -1) + respelled, "base64url")).toEqual(Buffer.from(signature, "base64url"));
        return `${header}.${payload}.${signature.slice(0, -1)}${respelled}`;
      },
    ],
  ])("%s", async (_name, forge) => {
    const keys = await keySet();
    const genuine = await issueAccessToken(keys, settings, claims, NOW);
    const forged = await forge(keys, genuine.token);
    const verdict = await verifyAccessToken(forged, keys, settings, NOW);
    expect(verdict).toBe(INVALID_TOKEN);
  });
});

/** A token from the real signing key with one header or claim changed (undefined removes it). */
async function sign(keys: KeySet, change: Record<string, unknown>): Promise<string> {
  const payload: Record<string, unknown> = {
    iss: "tokengate",
    aud: "tokengate",
    sub: "user:alice",
    scope: "data:read",
    client_id: "tokengate",
    jti: "j-1",
    iat: NOW / 1000,
    exp: NOW / 1000 + 900,
  };
  const header: Record<string, unknown> = { alg: keys.alg, typ: "at+jwt", kid: keys.signing.kid };
  for (const [name, value] of Object.entries(change)) {
    const target = name === "typ" || name === "kid" ? header : payload;
    if (value === undefined) delete target[name];
    else target[name] = value;
  }
  return new SignJWT(payload).setProtectedHeader(header as never).sign(keys.signing.key);
}
