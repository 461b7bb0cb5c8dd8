/**
 * `GET /admin/api/scopes`: the scopes a new key may be given without `allow_new_scope`, and the
 * roles ROLE_SCOPES defines with what each grants, so a form offers choices instead of a guess
 * the server then refuses.
 */
import { z } from "zod";
import type { RoleScopes } from "../authn/users.ts";
import { endpoint, type AdminEndpoint } from "./endpoints.ts";

export interface ScopeEndpointOptions {
  readonly knownScopes: () => readonly string[];
  readonly roleScopes: RoleScopes;
}

export function createScopeEndpoints(options: ScopeEndpointOptions): AdminEndpoint[] {
  const list = endpoint({
    method: "GET",
    path: "/scopes",
    summary: "The known scopes (what routes and roles require) and the roles with the scopes each grants",
    answer: z.object({
      scopes: z.array(z.string()).describe("what routes, roles and the gate itself require; * grants all"),
      roles: z.array(z.object({ name: z.string(), scopes: z.array(z.string()) })),
    }),
    status: 200,
    run: async () => ({
      scopes: [...options.knownScopes()],
      roles: [...options.roleScopes].map(([name, scopes]) => ({ name, scopes: [...scopes] })),
    }),
  });
  return [list] as AdminEndpoint[];
}
