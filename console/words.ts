/**
 * What the server's refusal codes mean, in words a person understands. Where one code covers
 * several situations (access_denied, a passkey refused), the server's own `description` says which
 * in a plain sentence and is shown as it is; the page never picks a wording by matching its text.
 */
import { explainRefusal } from "../client/tokengate.ts";

export interface Refusal {
  readonly status: number;
  readonly code: string;
  readonly description: string;
  /** Seconds, from `Retry-After`. */
  readonly retryAfter: number | undefined;
}

/** "in 30 seconds", "in about 2 minutes", or "in a moment" when the server did not say. */
export function waitFor(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds) || seconds <= 0) return "in a moment";
  if (seconds < 90) return `in ${Math.ceil(seconds)} second${Math.ceil(seconds) === 1 ? "" : "s"}`;
  return `in about ${Math.round(seconds / 60)} minutes`;
}

const INSECURE_PASSWORD =
  "Passwords are accepted only over HTTPS or on the gate's own machine. Sign in with an API key, or set up HTTPS (the README's TLS section).";

/** The server's description as a sentence of its own (it is written for people; a code never is). */
function sentence(description: string, fallback: string): string {
  const text = description.trim();
  if (text === "") return fallback;
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

/** Why a sign-in (password, key or passkey) did not work, in plain words. */
export function explainSignIn(refusal: Refusal): string {
  switch (refusal.code) {
    case "invalid_credentials":
      return "Wrong username or password.";
    case "access_denied":
      return sentence(refusal.description, "This credential may not sign in here.");
    case "too_many_requests":
      return `Too many failed attempts from this device. Try again ${waitFor(refusal.retryAfter)}.`;
    case "temporarily_unavailable":
      return `The gate is busy or cannot reach its credential store. Try again ${waitFor(refusal.retryAfter)}.`;
    case "invalid_request":
      return sentence(refusal.description, "The sign-in was incomplete: fill in every field.");
    case "invalid_grant":
      return "That passkey sign-in did not check out. Try again.";
    case "cross_site_request":
    case "forbidden_origin":
      return "The gate does not trust this page's address (ALLOWED_ORIGINS).";
    default:
      return explainRefusal(refusal);
  }
}

/** The `?error=` a sign-in without JavaScript came back with: the code alone, no description. */
export function explainErrorParameter(code: string): string {
  if (code === "invalid_token") return "That API key or token is not valid (wrong, revoked or expired).";
  if (code === "invalid_request") return `The sign-in was incomplete or was refused over plain HTTP. ${INSECURE_PASSWORD}`;
  if (!/^[a-z_]{1,40}$/.test(code)) return "The sign-in did not work. Try again.";
  const known = explainSignIn({ status: 0, code, description: "", retryAfter: undefined });
  return known.startsWith("Refused (") ? "The sign-in did not work. Try again." : known;
}

/** Why the gate turned a passkey down: the code where it says enough, else the server's sentence. */
export function explainPasskeyRefusal(refusal: Refusal): string {
  const { code, description } = refusal;
  if (code === "not_found") return "Passkeys are not set up on this gate yet: its operator gives it an https:// name (see the README).";
  if (code === "forbidden_origin")
    return "Passkeys work only from the gate's own address (its https:// name). Open this page there and try again.";
  if (code === "invalid_credentials" || code === "access_denied" || code === "invalid_request")
    return sentence(description, "The passkey could not be checked. Try again, or sign in another way.");
  return explainSignIn(refusal);
}

/** What a WebAuthn ceremony's exception means (the browser's own messages are for developers). */
export function explainPasskeyError(error: unknown): string {
  const name = error instanceof Error ? error.name : "";
  switch (name) {
    case "NotAllowedError":
    case "AbortError":
      return "The passkey request was cancelled or timed out.";
    case "InvalidStateError":
      return "This device already holds a passkey for this account.";
    case "SecurityError":
      return "Passkeys need HTTPS and a name for this gate such as gate.local, not an IP address.";
    case "NotSupportedError":
      return "This browser or device cannot use a passkey here.";
    default:
      return "The passkey did not work. Try again, or sign in another way.";
  }
}
