/** GET /.well-known/jwks.json: the public keys that verify access tokens, for resource servers. */
import { jsonResponse } from "../http/responses.ts";
import type { HttpRoute } from "../http/routes.ts";
import type { KeySet } from "../secrets/jwt.ts";

export function createJwksRoute(keys: () => KeySet): HttpRoute {
  // Serialised once per key set, not per request: it changes only when the signing keys rotate.
  let jwks = { for: "", body: "" };
  const readJwksBody = () => {
    const current = keys();
    if (jwks.for !== current.fingerprint) jwks = { for: current.fingerprint, body: JSON.stringify(current.jwks) };
    return jwks.body;
  };
  return {
    kind: "http",
    path: "/.well-known/jwks.json",
    methods: ["GET", "HEAD"],
    scope: null,
    handle: () => jsonResponse(200, readJwksBody(), { "cache-control": "public, max-age=300" }),
  };
}
