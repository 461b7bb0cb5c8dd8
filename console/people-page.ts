/**
 * People: every user with their roles and state, a form that adds one, and Disable/Enable, change
 * role and a new password on each. The last admin cannot be disabled (the gate says why), and
 * disabling yourself asks first.
 */
import { admin, bodyOr, isProblem, type ScopeChoices, type UserView } from "./admin-api.ts";
import { $, say } from "./dom.ts";
import { actionButton, confirmAction, el, facts, fillList, whenInWords } from "./ui.ts";
import type { View } from "./views.ts";

export interface PeoplePageContext {
  /** The username the page is signed in as, if a person. */
  readonly ownUsername: () => string | undefined;
  readonly ownAccountDisabled: () => void;
}

function stateOf(user: UserView): { text: string; tone: string } {
  if (user.disabled) return { text: `Disabled ${whenInWords(user.disabled_at)}`, tone: "muted" };
  return { text: "Can sign in", tone: "good" };
}

function signInWay(user: UserView): string {
  const passkeys = `${user.passkeys} passkey${user.passkeys === 1 ? "" : "s"}`;
  return user.passkey_required ? `passkey only (${passkeys})` : `password or passkey (${passkeys})`;
}

/** What the add form asks for, or the sentence saying what is missing. */
function readUserForm(form: HTMLFormElement): { username: string; password: string; roles: string[] } | string {
  const data = new FormData(form);
  const username = String(data.get("username") ?? "").trim();
  const password = String(data.get("password") ?? "");
  if (username === "" || password === "") return "A new person needs a username and a password.";
  return { username, password, roles: [String(data.get("role") ?? "")] };
}

export class PeoplePage implements View {
  private readonly form = $<HTMLFormElement>("user-form");
  private roles: ScopeChoices["roles"] = [];

  constructor(private readonly context: PeoplePageContext) {
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.add();
    });
  }

  async load(): Promise<void> {
    await this.showRoles();
    const answer = bodyOr(await admin.users());
    if (isProblem(answer)) return say(answer.problem, "bad");
    const card = (user: UserView) => this.userCard(user);
    fillList($<HTMLUListElement>("people-list"), answer.users, card, "Nobody yet. Add the people who use this gate above.");
  }

  private async add(): Promise<void> {
    const asked = readUserForm(this.form);
    if (typeof asked === "string") return say(asked, "bad");
    const answer = bodyOr(await admin.addUser(asked));
    if (isProblem(answer)) return say(answer.problem, "bad");
    this.form.reset();
    say(`${answer.user.username} added. They can sign in now.`, "good");
    await this.load();
  }

  private async setDisabled(user: UserView, disabled: boolean): Promise<void> {
    const own = user.username === this.context.ownUsername();
    const question = own
      ? "Disable your own account? You are signed out at once."
      : `Disable ${user.username}? They are signed out everywhere.`;
    if (disabled && !(await confirmAction(question, "Disable"))) return;
    const answer = bodyOr(await admin.setDisabled(user.username, disabled, own));
    if (isProblem(answer)) return say(answer.problem, "bad");
    if (own && disabled) return this.context.ownAccountDisabled();
    say(disabled ? `${user.username} is disabled and signed out.` : `${user.username} can sign in again.`, "good");
    await this.load();
  }

  private async changeRole(user: UserView, role: string): Promise<void> {
    const answer = bodyOr(await admin.setRoles(user.username, [role]));
    if (isProblem(answer)) return say(answer.problem, "bad");
    say(`${user.username} is now ${role}.`, "good");
    await this.load();
  }

  private roleControl(user: UserView): HTMLElement {
    const id = `role-of-${user.username}`;
    const options = this.roles.map((role) => el("option", { value: role.name, selected: user.roles.includes(role.name) }, role.name));
    const select = el("select", { id, "data-testid": id }, ...options);
    const apply = actionButton("Change role", `apply-role-${user.username}`, () => this.changeRole(user, select.value), {
      "aria-label": `Change the role of ${user.username}`,
    });
    return el("div", { class: "row" }, el("label", { for: id, class: "inline" }, "Role"), select, apply);
  }

  private userCard(user: UserView): HTMLElement {
    const state = stateOf(user);
    const toggle = user.disabled
      ? actionButton("Enable", `enable-${user.username}`, () => this.setDisabled(user, false), { "aria-label": `Enable ${user.username}` })
      : actionButton("Disable", `disable-${user.username}`, () => this.setDisabled(user, true), {
          "aria-label": `Disable ${user.username}`,
        });
    return el(
      "article",
      { "aria-labelledby": `user-${user.username}`, "data-testid": `user-${user.username}` },
      el("h4", { id: `user-${user.username}` }, user.username, " ", el("span", { class: `badge ${state.tone}` }, state.text)),
      facts([
        ["Roles", user.roles.join(", ")],
        ["Signs in with", signInWay(user)],
        ["Added", whenInWords(user.created_at, "unknown")],
      ]),
      this.roles.length > 1 && this.roleControl(user),
      el("div", { class: "row" }, toggle),
    );
  }

  /** The roles ROLE_SCOPES defines, asked once: the add form's choices, viewer first chosen. */
  private async showRoles(): Promise<void> {
    if (this.roles.length > 0) return;
    const answer = bodyOr(await admin.scopes());
    if (isProblem(answer)) return;
    this.roles = answer.roles;
    const options = this.roles.map((role) =>
      el("option", { value: role.name, selected: role.name === "viewer" }, `${role.name} (${role.scopes.join(", ")})`),
    );
    $<HTMLSelectElement>("user-role").replaceChildren(...options);
  }
}
