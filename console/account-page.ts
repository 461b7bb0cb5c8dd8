/**
 * My account: who the page is signed in as (the "who am I" list), and for a person signed in with
 * a browser session their other sessions (Sign out on any of them) and their passkeys (Remove asks
 * for the password, as adding one does). A key has no sessions of its own to list here beyond
 * the browsers it opened, and no passkeys.
 */
import { account, bodyOr, isProblem, type SessionView } from "./admin-api.ts";
import { $, say } from "./dom.ts";
import { sessionFacts } from "./sessions-page.ts";
import { actionButton, el, facts, fillList, whenInWords } from "./ui.ts";
import type { View } from "./views.ts";

type Passkey = { id: string; name: string; created_at: string | null; last_used_at: string | null };

export interface AccountPageContext {
  /** Whether the page is signed in with a browser session (a token in memory has none to list). */
  readonly hasSession: () => boolean;
  readonly isUser: () => boolean;
}

const removeForm = $<HTMLFormElement>("passkey-remove-form");
const removePassword = $<HTMLInputElement>("passkey-remove-password");

export class AccountPage implements View {
  /** The passkey whose removal waits for the password. */
  private removing: Passkey | undefined;

  constructor(private readonly context: AccountPageContext) {
    removeForm.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.removePasskey();
    });
    $<HTMLButtonElement>("passkey-remove-cancel").addEventListener("click", () => this.closeRemoveForm());
  }

  async load(): Promise<void> {
    const session = this.context.hasSession();
    const person = session && this.context.isUser();
    $<HTMLElement>("my-sessions-section").hidden = !session;
    $<HTMLElement>("my-passkeys-section").hidden = !person;
    if (session) await this.showSessions();
    if (person) await this.showPasskeys();
  }

  private async showSessions(): Promise<void> {
    const mine = bodyOr(await account.sessions());
    if (isProblem(mine)) return;
    const ordered = [...mine.sessions].sort((a, b) => Number(b.current === true) - Number(a.current === true));
    fillList($<HTMLUListElement>("my-sessions"), ordered, (session) => this.sessionCard(session), "No browser session.");
  }

  private async showPasskeys(): Promise<void> {
    const keys = bodyOr(await account.passkeys());
    if (isProblem(keys)) return;
    const none = "No passkey yet. Add one to sign in without a password.";
    fillList($<HTMLUListElement>("my-passkeys"), keys.passkeys, (passkey) => this.passkeyCard(passkey), none);
  }

  private async endSession(session: SessionView): Promise<void> {
    const answer = bodyOr(await account.revokeSession(session.id));
    if (isProblem(answer)) return say(answer.problem, "bad");
    say("That browser is signed out.", "good");
    await this.load();
  }

  private sessionCard(session: SessionView): HTMLElement {
    const title = session.current === true ? "This browser" : `Another browser (${session.created_from})`;
    const end = session.current !== true && actionButton("Sign it out", `end-my-session-${session.id}`, () => this.endSession(session));
    return el(
      "article",
      { "aria-labelledby": `my-session-${session.id}`, "data-testid": `my-session-${session.id}` },
      el("h4", { id: `my-session-${session.id}` }, title),
      sessionFacts(session),
      end && el("div", { class: "row" }, end),
    );
  }

  private passkeyCard(passkey: Passkey): HTMLElement {
    const label = `Remove the passkey ${passkey.name}`;
    const remove = el("button", { type: "button", "data-testid": `remove-passkey-${passkey.id}`, "aria-label": label }, "Remove");
    remove.addEventListener("click", () => this.askToRemove(passkey));
    return el(
      "article",
      { "aria-label": passkey.name },
      el("h4", {}, passkey.name),
      facts([
        ["Added", whenInWords(passkey.created_at)],
        ["Last used", whenInWords(passkey.last_used_at)],
      ]),
      el("div", { class: "row" }, remove),
    );
  }

  private askToRemove(passkey: Passkey): void {
    this.removing = passkey;
    $<HTMLElement>("passkey-remove-name").textContent = passkey.name;
    removeForm.hidden = false;
    removePassword.focus();
  }

  private closeRemoveForm(): void {
    removePassword.value = "";
    removeForm.hidden = true;
  }

  /** Removing a passkey changes how the account signs in: the password is asked, as for adding one. */
  private async removePasskey(): Promise<void> {
    const passkey = this.removing;
    const typed = removePassword.value;
    this.closeRemoveForm();
    if (passkey === undefined) return;
    const answer = bodyOr(await account.removePasskey(passkey.id, typed));
    if (isProblem(answer)) return say(`The passkey was not removed. ${answer.problem}`, "bad");
    say(`Passkey "${passkey.name}" removed.`, "good");
    await this.load();
  }
}
