/**
 * The scopes a deployment knows: those its routes require, `*`, and those ROLE_SCOPES grants. A
 * scope nothing requires opens nothing, so a typo such as `data:raed` would make a key that
 * quietly fails; the CLI checks new scopes against this set. It is built in one function, so a
 * configured route table (a routes file) extends it by passing its routes.
 */
import { ANY_SCOPE } from "../core/principal.ts";
import { createSeedRoutes, SCOPES } from "./routes.ts";
import type { RoleScopes } from "../authn/users.ts";

/** The scope that grants every route. */
export const ALL_SCOPES = "*";

/** Only what a route needs matters here; a routes file can pass its own route objects. */
export interface ScopedRoute {
  readonly scope: string | null;
}

/** Every scope some route requires or some role grants, `*` first, then in alphabetical order. */
export function listKnownScopes(roleScopes: RoleScopes, routes: readonly ScopedRoute[] = createSeedRoutes()): string[] {
  const known = new Set<string>(Object.values(SCOPES));
  for (const route of routes) {
    // null: a public route; ANY_SCOPE: any valid credential (whoami). Neither is a grantable scope.
    if (route.scope !== null && route.scope !== ANY_SCOPE) known.add(route.scope);
  }
  for (const scopes of roleScopes.values()) for (const scope of scopes) known.add(scope);
  known.delete(ALL_SCOPES);
  return [ALL_SCOPES, ...[...known].sort()];
}

/** The entries of `scopes` that are not in `known`, in the order given. */
export function findUnknownScopes(scopes: readonly string[], known: readonly string[]): string[] {
  return scopes.filter((scope) => !known.includes(scope));
}
