/**
 * The console's pages put together: each view with what it needs to know of who is signed in,
 * and the switcher that shows the one the address names.
 */
import { AccountPage } from "./account-page.ts";
import { createActivityView } from "./activity-page.ts";
import { createBansView } from "./bans-page.ts";
import { hideSecret, KeysPage } from "./keys-page.ts";
import { PeoplePage } from "./people-page.ts";
import type { Principal } from "./requests.ts";
import { SessionsPage } from "./sessions-page.ts";
import { createSigningKeysView } from "./signing-keys-page.ts";
import { ViewSwitcher } from "./views.ts";

export interface SignedIn {
  readonly principal: Principal;
  /** Whether the page rides a browser session (the cookie), not a token in its memory. */
  readonly session: boolean;
}

export interface PagesContext {
  readonly signedIn: () => SignedIn | undefined;
  /** Something done on a page ended the page's own sign-in: say why, and show the signed-out page. */
  readonly signedOut: (message: string) => void;
}

/** Whether these scopes open the admin pages: the admin API's scope, or every scope. */
export const isAdmin = (scopes: readonly string[]) => scopes.includes("admin") || scopes.includes("*");

export function createPages(context: PagesContext): ViewSwitcher {
  const principal = () => context.signedIn()?.principal;
  return new ViewSwitcher({
    keys: new KeysPage({
      ownKeyId: () => (principal()?.kind === "key" ? principal()?.id : undefined),
      ownKeyEnded: () => context.signedOut("You revoked the key this page was signed in with, so it is signed out."),
    }),
    people: new PeoplePage({
      ownUsername: () => (principal()?.kind === "user" ? principal()?.name : undefined),
      ownAccountDisabled: () => context.signedOut("You disabled your own account, so this page is signed out."),
    }),
    sessions: new SessionsPage({
      isOwnSession: (session) => session.current === true,
      ownSessionEnded: () => context.signedOut("You signed this browser out."),
    }),
    bans: createBansView(),
    "signing-keys": createSigningKeysView(),
    activity: createActivityView(),
    account: new AccountPage({
      hasSession: () => context.signedIn()?.session === true,
      isUser: () => principal()?.kind === "user",
    }),
  });
}

export { hideSecret };
