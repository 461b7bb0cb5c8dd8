/**
 * Activity: this server's recent security events, newest first (refused sign-ins, bans, sessions,
 * admin changes), filtered by kind. Each is told in words, with the fields the audit line carries
 * (never a secret: the audit log holds none).
 */
import { admin, bodyOr, isProblem, type AuditEvent } from "./admin-api.ts";
import { $, say } from "./dom.ts";
import { el, facts, fillList, whenInWords } from "./ui.ts";
import type { View } from "./views.ts";

const EVENTS: Record<string, string> = {
  "auth.success": "Signed in",
  "auth.failure": "Refused",
  "key.created": "Key made",
  "key.revoked": "Key revoked",
  "key.rotated": "Key replaced",
  "refresh.reuse_detected": "A refresh token was used twice: its sign-in was ended",
  "ban.started": "Banned after failed attempts",
  "ban.ended": "Ban ended",
  "pairing.completed": "Device paired",
  "session.created": "Browser signed in",
  "session.ended": "Browser signed out",
  "passkey.added": "Passkey added",
  "passkey.removed": "Passkey removed",
  "admin.action": "Change by an admin",
};

/** The admin API's actions (`admin.action`'s `action`), in words. */
const ACTIONS: Record<string, string> = {
  "account.sessions.revoke": "signed out one of their own browsers",
  "bans.clear": "lifted a ban",
  "keys.create": "made a key",
  "keys.revoke": "revoked a key",
  "keys.rotate": "replaced a key",
  "keys.update": "changed a key",
  "refresh.revoke": "ended a token sign-in",
  "refresh.revoke-all": "ended a person's token sign-ins",
  "sessions.revoke": "signed out a browser",
  "sessions.revoke-all": "signed out every browser of someone",
  "signing-keys.rotate": "made a new signing key",
  "users.add": "added a person",
  "users.disable": "disabled a person",
  "users.enable": "enabled a person",
  "users.passkeys.remove": "removed a person's passkey",
  "users.password": "set a new password",
  "users.require-passkey": "changed how a person signs in",
  "users.roles": "changed a person's role",
};

const METHODS: Record<string, string> = { password: "a password", passkey: "a passkey", key: "an API key" };

const FIELDS: Record<string, string> = {
  detail: "What happened",
  action: "Change",
  method: "With",
  scopes: "May",
  session: "Session",
  by: "By",
  address: "From",
  path: "Address asked",
  key_id: "Key",
  user: "User",
  username: "User",
  principal: "Who",
  subject: "Who",
  session_id: "Session",
  name: "Name",
};

/** Fields that only restate the event, or that read as codes: left out of the card. */
const SKIPPED = new Set(["time", "audit", "reason", "by_kind", "kind"]);

/** A field's value in words where it is a code: an action, a method, `key:<id>`, `user:<name>`. */
function valueInWords(name: string, value: string): string {
  if (name === "action") return ACTIONS[value] ?? value;
  if (name === "method") return METHODS[value] ?? value;
  return value
    .replace(/^key:/, "key ")
    .replace(/^user:/, "")
    .replace(/^addr:/, "address ");
}

function labelOf(name: string): string {
  const words = name.replace(/_/g, " ");
  return FIELDS[name] ?? words.charAt(0).toUpperCase() + words.slice(1);
}

function eventFacts(event: AuditEvent): Array<[string, string]> {
  return Object.entries(event)
    .filter(([name, value]) => !SKIPPED.has(name) && value !== null && value !== "")
    .map(([name, value]) => [labelOf(name), valueInWords(name, String(value))]);
}

function eventCard(event: AuditEvent): HTMLElement {
  const title = EVENTS[event.audit] ?? event.audit;
  const tone = event.audit === "auth.failure" || event.audit === "ban.started" || event.audit === "refresh.reuse_detected" ? "bad" : "";
  return el(
    "article",
    { class: "event" },
    el("h4", {}, el("span", { class: tone }, title), " ", el("time", { datetime: event.time, class: "muted" }, whenInWords(event.time))),
    facts(eventFacts(event)),
  );
}

export function createActivityView(): View {
  const list = $<HTMLOListElement>("activity-list");
  const filter = $<HTMLSelectElement>("activity-filter");
  const view: View = {
    async load() {
      const answer = bodyOr(await admin.audit(filter.value === "" ? undefined : filter.value));
      if (isProblem(answer)) return say(answer.problem, "bad");
      fillList(list, answer.events, eventCard, "Nothing recorded since this server started.");
    },
  };
  filter.addEventListener("change", () => void view.load());
  $<HTMLButtonElement>("activity-refresh").addEventListener("click", () => void view.load());
  return view;
}
