/**
 * Bans: the addresses, keys and usernames the guard shut out after repeated failures, each with
 * how long it lasts and a Lift button (a family member who mistyped a password, let back in).
 */
import { admin, bodyOr, isProblem, type BanView } from "./admin-api.ts";
import { $, say } from "./dom.ts";
import { actionButton, el, facts, fillList, whenInWords } from "./ui.ts";
import type { View } from "./views.ts";

/** `addr:192.168.1.9` → "address 192.168.1.9", `key:…` → "key …", `user:kim` → "user kim", `codes:user:kim` → "user kim, typing device codes". */
function subjectInWords(subject: string): string {
  if (subject.startsWith("codes:")) return `${subjectInWords(subject.slice(6))}, typing device codes`;
  const [kind, ...rest] = subject.split(":");
  const value = rest.join(":");
  return kind === "addr" ? `address ${value}` : kind === "key" ? `key ${value}` : `user ${value}`;
}

export function createBansView(): View {
  const list = $<HTMLUListElement>("bans-list");

  async function lift(ban: BanView): Promise<void> {
    const answer = bodyOr(await admin.clearBan(ban.subject));
    if (isProblem(answer)) return say(answer.problem, "bad");
    say(`Ban on ${subjectInWords(ban.subject)} lifted: it may try again now.`, "good");
    await view.load();
  }

  function banCard(ban: BanView): HTMLElement {
    const what = subjectInWords(ban.subject);
    const id = `ban-${ban.subject.replace(/[^a-z0-9]/gi, "-")}`;
    return el(
      "article",
      { "aria-labelledby": id, "data-testid": id },
      el("h4", { id }, what),
      facts([
        ["Since", whenInWords(ban.started_at)],
        ["Ends", whenInWords(ban.until)],
        ["Why", ban.level === 1 ? "too many failed attempts" : `too many failed attempts, again (ban ${ban.level} in a row)`],
      ]),
      el(
        "div",
        { class: "row" },
        actionButton("Lift the ban", `lift-${id}`, () => lift(ban), { "aria-label": `Lift the ban on ${what}` }),
      ),
    );
  }

  const view: View = {
    async load() {
      const answer = bodyOr(await admin.bans());
      if (isProblem(answer)) return say(answer.problem, "bad");
      fillList(list, answer.bans, banCard, "Nobody is banned.");
    },
  };
  return view;
}
