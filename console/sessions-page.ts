/**
 * Sessions: every open browser sign-in (who, how, from where, last use, end), each with Sign out,
 * and every app signed in at the token endpoint (a refresh-token family), each with End. Ending
 * the session this page uses asks first, then signs the page out.
 */
import { admin, bodyOr, isProblem, type RefreshFamilyView, type SessionView } from "./admin-api.ts";
import { $, say } from "./dom.ts";
import { actionButton, confirmAction, el, facts, fillList, whenInWords } from "./ui.ts";
import type { View } from "./views.ts";

const METHODS: Record<SessionView["method"], string> = { password: "a password", passkey: "a passkey", key: "an API key" };

/** `user:kim` → "kim"; `key:0123…` → the key's name when known ("key kitchen tablet"), else "key 0123…". */
export function subjectInWords(subject: string, keyNames: ReadonlyMap<string, string> = new Map()): string {
  if (subject.startsWith("user:")) return subject.slice(5);
  const id = subject.slice(4);
  return `key ${keyNames.get(id) ?? id}`;
}

/** A session's facts, as this page and the account page show them. */
export function sessionFacts(session: SessionView): HTMLDListElement {
  return facts([
    ["Signed in", `${whenInWords(session.created_at)} with ${METHODS[session.method]}, from ${session.created_from}`],
    ["Last used", whenInWords(session.last_seen_at)],
    ["Ends", whenInWords(session.expires_at)],
  ]);
}

export interface SessionsPageContext {
  readonly ownSessionEnded: () => void;
  readonly isOwnSession: (session: SessionView) => boolean;
}

const currentFirst = (sessions: readonly SessionView[]) =>
  [...sessions].sort((a, b) => Number(b.current === true) - Number(a.current === true));

export class SessionsPage implements View {
  /** Key id → name, so a session or sign-in opened with a key shows the key's name. */
  private keyNames: ReadonlyMap<string, string> = new Map();

  constructor(private readonly context: SessionsPageContext) {}

  async load(): Promise<void> {
    const [sessions, keys] = await Promise.all([admin.sessions(), admin.keys()]);
    const answer = bodyOr(sessions);
    if (isProblem(answer)) return say(answer.problem, "bad");
    const known = bodyOr(keys);
    if (!isProblem(known)) this.keyNames = new Map(known.keys.map((key) => [key.id, key.name]));
    void this.showFamilies();
    const card = (session: SessionView) => this.sessionCard(session);
    fillList($<HTMLUListElement>("sessions-list"), currentFirst(answer.sessions), card, "No browser is signed in.");
  }

  private async revoke(session: SessionView): Promise<void> {
    const own = this.context.isOwnSession(session);
    const who = subjectInWords(session.subject, this.keyNames);
    const question = own ? "Sign out this browser? It is the session this page uses." : `Sign out ${who} on that browser?`;
    if (!(await confirmAction(question, "Sign out"))) return;
    const answer = bodyOr(await admin.revokeSession(session.id, own));
    if (isProblem(answer)) return say(answer.problem, "bad");
    if (own) return this.context.ownSessionEnded();
    say(`${who} is signed out there.`, "good");
    await this.load();
  }

  private sessionCard(session: SessionView): HTMLElement {
    const who = subjectInWords(session.subject, this.keyNames);
    const end = actionButton("Sign out", `end-session-${session.id}`, () => this.revoke(session), {
      "aria-label": `Sign out ${who}, session ${session.id}`,
    });
    return el(
      "article",
      { "aria-labelledby": `session-${session.id}`, "data-testid": `session-${session.id}` },
      el(
        "h4",
        { id: `session-${session.id}` },
        who,
        this.context.isOwnSession(session) && el("span", { class: "badge good" }, "this browser"),
      ),
      sessionFacts(session),
      el("div", { class: "row" }, end),
    );
  }

  private async endFamily(family: RefreshFamilyView): Promise<void> {
    const who = subjectInWords(family.subject, this.keyNames);
    if (!(await confirmAction(`End the sign-in of ${family.client_id} as ${who}? It must sign in again.`, "End it"))) return;
    const answer = bodyOr(await admin.revokeFamily(family.family_id, false));
    if (isProblem(answer)) return say(answer.problem, "bad");
    say(`${family.client_id} is signed out; its tokens stop working.`, "good");
    await this.load();
  }

  private familyCard(family: RefreshFamilyView): HTMLElement {
    const who = subjectInWords(family.subject, this.keyNames);
    const id = `family-${family.family_id}`;
    const end = actionButton("End", `end-${id}`, () => this.endFamily(family), {
      "aria-label": `End the sign-in of ${family.client_id} as ${who}`,
    });
    return el(
      "article",
      { "aria-labelledby": id, "data-testid": id },
      el("h4", { id }, `${family.client_id} as ${who}`),
      facts([
        ["Signed in", whenInWords(family.created_at)],
        ["Last renewed", whenInWords(family.last_rotated_at)],
        ["May", family.scopes.join(", ")],
        ["Ends", whenInWords(family.expires_at)],
      ]),
      el("div", { class: "row" }, end),
    );
  }

  private async showFamilies(): Promise<void> {
    const answer = bodyOr(await admin.refreshFamilies());
    if (isProblem(answer)) return;
    const live = answer.families.filter((family) => !family.revoked);
    const card = (family: RefreshFamilyView) => this.familyCard(family);
    fillList($<HTMLUListElement>("families-list"), live, card, "No app is signed in with a refresh token.");
  }
}
