/**
 * Signing keys: the keys that sign this gate's access tokens, which one signs now and which only
 * verify tokens they signed earlier; Replace makes a new one (tokens already out keep working
 * until they expire).
 */
import { admin, bodyOr, isProblem, type SigningKeyView } from "./admin-api.ts";
import { $, say } from "./dom.ts";
import { confirmAction, el, facts, fillList, whenInWords } from "./ui.ts";
import type { View } from "./views.ts";

const STATES: Record<string, { text: string; tone: string }> = {
  signing: { text: "Signs new tokens", tone: "good" },
  verifying: { text: "Only checks tokens it signed earlier", tone: "warn" },
  expired: { text: "No longer used", tone: "muted" },
};

function signingKeyCard(key: SigningKeyView): HTMLElement {
  const state = STATES[key.state] ?? { text: key.state, tone: "" };
  return el(
    "article",
    { "aria-labelledby": `kid-${key.kid}`, "data-testid": `signing-key-${key.kid}` },
    el("h4", { id: `kid-${key.kid}` }, key.kid, " ", el("span", { class: `badge ${state.tone}` }, state.text)),
    facts([
      ["Algorithm", key.alg],
      ["Made", whenInWords(key.created_at)],
      ["Retired", whenInWords(key.retired_at, "not retired")],
    ]),
  );
}

export function createSigningKeysView(): View {
  const list = $<HTMLUListElement>("signing-keys-list");
  const view: View = {
    async load() {
      const answer = bodyOr(await admin.signingKeys());
      if (isProblem(answer)) return say(answer.problem, "bad");
      fillList(list, answer.signing_keys, signingKeyCard, "None yet: the gate makes one when it first signs a token.");
    },
  };
  $<HTMLButtonElement>("rotate-signing-key").addEventListener("click", async () => {
    const question = "Make a new signing key? Tokens signed so far keep working until they expire.";
    if (!(await confirmAction(question, "Make a new key"))) return;
    const answer = bodyOr(await admin.rotateSigningKey());
    if (isProblem(answer)) return say(answer.problem, "bad");
    say("New signing key made: it signs every token from now on.", "good");
    await view.load();
  });
  return view;
}
