/**
 * The console's pages as views of one document, chosen by the address's fragment (`#keys`,
 * `#people`, …) so Back works and a page can be bookmarked. An admin sees the navigation and lands
 * on Devices & keys; anyone else sees only their own account. What a view shows is fetched when it
 * opens, so a revoked key or a new ban is there without a reload.
 */
import { $ } from "./dom.ts";

export type ViewName = "keys" | "people" | "sessions" | "bans" | "signing-keys" | "activity" | "account";

const ADMIN_VIEWS: readonly ViewName[] = ["keys", "people", "sessions", "bans", "signing-keys", "activity"];
const ALL_VIEWS: readonly ViewName[] = [...ADMIN_VIEWS, "account"];

export interface View {
  /** Fetches and shows the view's content; called each time the view opens. */
  load(): Promise<void>;
  /** Takes off the screen anything that must not outlive a visit (a new key's secret). */
  leave?(): void;
}

const isViewName = (text: string): text is ViewName => (ALL_VIEWS as readonly string[]).includes(text);

export class ViewSwitcher {
  private admin = false;
  private signedIn = false;
  private current: ViewName | undefined;

  constructor(private readonly views: Readonly<Record<ViewName, View>>) {
    addEventListener("hashchange", () => this.follow());
  }

  /** Who is signed in decides what may be shown: called on every sign-in and sign-out. */
  setAccess(signedIn: boolean, admin: boolean): void {
    this.signedIn = signedIn;
    this.admin = admin;
    $<HTMLElement>("admin-nav").hidden = !(signedIn && admin);
    this.follow();
  }

  /** Opens the view the address names, or the one this person lands on. */
  follow(): void {
    const asked = location.hash.slice(1);
    const wanted: ViewName = isViewName(asked) ? asked : this.admin ? "keys" : "account";
    const view: ViewName = !this.signedIn || (!this.admin && wanted !== "account") ? "account" : wanted;
    this.show(view);
  }

  /** Loads the open view again (after a change made elsewhere on the page). */
  reload(): Promise<void> {
    return this.current === undefined || !this.signedIn ? Promise.resolve() : this.views[this.current].load();
  }

  private show(view: ViewName): void {
    if (this.current !== undefined && this.current !== view) this.views[this.current].leave?.();
    this.current = view;
    for (const name of ALL_VIEWS) $<HTMLElement>(`view-${name}`).hidden = name !== view;
    // Signed in, "Sign in as someone else" belongs to My account, not above every admin page.
    $<HTMLElement>("signin").hidden = this.signedIn && view !== "account";
    for (const link of document.querySelectorAll<HTMLAnchorElement>("#admin-nav a")) {
      if (link.hash === `#${view}`) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    if (this.signedIn) void this.views[view].load();
  }
}
