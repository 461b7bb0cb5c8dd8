/**
 * The admin API as routes of the gate: every endpoint under `/admin/api/` (scope `admin`), and its
 * OpenAPI document at `/admin/api/openapi.json` (public: it describes, it holds nothing).
 */
import type { Clock } from "../core/clock.ts";
import type { AuditLog } from "../guard/audit.ts";
import { jsonResponse } from "../http/responses.ts";
import type { HttpRoute } from "../http/routes.ts";
import type { Store } from "../store/store.ts";
import { ADMIN_API, toAdminRoutes, type AdminEndpoint } from "./endpoints.ts";
import { ACCOUNT_MOUNT, createAccountEndpoints } from "./account-endpoints.ts";
import { createAuditEndpoints } from "./audit-endpoints.ts";
import { createBanEndpoints } from "./ban-endpoints.ts";
import { createKeyEndpoints } from "./key-endpoints.ts";
import { buildOpenApiDocument } from "./openapi.ts";
import { createPasskeyEndpoints } from "./passkey-endpoints.ts";
import { createRefreshEndpoints } from "./refresh-endpoints.ts";
import { createScopeEndpoints } from "./scope-endpoints.ts";
import { createSessionEndpoints } from "./session-endpoints.ts";
import { createSigningKeyEndpoints } from "./signing-key-endpoints.ts";
import { createUserEndpoints } from "./user-endpoints.ts";
import type { RoleScopes } from "../authn/users.ts";
import type { JwtAlgorithm } from "../secrets/jwt.ts";

export interface AdminOptions {
  readonly store: Store;
  readonly audit: AuditLog;
  readonly now: Clock;
  /** Scopes a new key may be given without `allow_new_scope` (the routes' and roles' scopes). */
  readonly knownScopes: () => readonly string[];
  /** The document's version: the package's. */
  readonly version: string;
  /** Brings the keyring up to date after a change. */
  readonly afterChange: () => Promise<unknown>;
  /** Whether a host is a service's (routes file): the admin API is not answered there. */
  readonly servesServiceHost: (host: string | null) => boolean;
  /** Role → scopes (ROLE_SCOPES): what a user's roles grant, and who is an admin. */
  readonly roleScopes: RoleScopes;
  /** JWT_ALG: what a rotated signing key is made for. */
  readonly jwtAlg: JwtAlgorithm;
}

export function listAdminEndpoints(
  options: Pick<AdminOptions, "store" | "knownScopes" | "audit" | "roleScopes" | "jwtAlg">,
): AdminEndpoint[] {
  return [
    ...createKeyEndpoints(options),
    ...createAuditEndpoints(options.audit),
    ...createSessionEndpoints(options),
    ...createBanEndpoints(options),
    ...createUserEndpoints(options),
    ...createPasskeyEndpoints(options),
    ...createRefreshEndpoints(options),
    ...createSigningKeyEndpoints(options),
    ...createScopeEndpoints(options),
  ];
}

export function createAdminRoutes(options: AdminOptions): HttpRoute[] {
  const endpoints = listAdminEndpoints(options);
  // Built on the first request and kept (the schemas do not change while the server runs): about
  // 16 ms of JSON Schema generation that no start of the gate should pay.
  let document: string | undefined;
  const openapi: HttpRoute = {
    kind: "http",
    path: `${ADMIN_API}/openapi.json`,
    methods: ["GET", "HEAD"],
    scope: null,
    handle: () => jsonResponse(200, (document ??= JSON.stringify(buildOpenApiDocument(endpoints, options.version)))),
  };
  return [...toAdminRoutes(endpoints, options), openapi, ...toAdminRoutes(createAccountEndpoints(options.store), options, ACCOUNT_MOUNT)];
}
