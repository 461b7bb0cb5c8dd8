/**
 * A password given on a sign-in page or to confirm a change (adding a passkey): the transport rule
 * for passwords, the account's lock, the argon2 check off the event loop, and a wrong one counted
 * and audited like every guess. One sequence for the login form and the passkey step-up.
 */
import { BasicCredentials } from "../authn/credentials.ts";
import type { PasswordAuthenticator } from "../authn/users.ts";
import { GateError, INSECURE_PASSWORD, tooManyAttempts } from "../core/errors.ts";
import type { Principal } from "../core/principal.ts";
import type { AuditLog } from "../guard/audit.ts";
import type { Guard } from "../guard/guard.ts";
import type { GateMetrics } from "../core/gate-metrics.ts";
import { settleRefusal } from "../guard/refusals.ts";
import type { AddressResolver, TransportCheck } from "../http/clients.ts";
import { preparePassword } from "../secrets/passwords.ts";
import type { GateServer } from "../ws/data.ts";

export interface PasswordChecks {
  readonly authenticatePassword: PasswordAuthenticator;
  /** Whether a password may travel on this request's transport (TLS or loopback); absent: always. */
  readonly passwordTransport?: TransportCheck | undefined;
  readonly guard: Guard;
  readonly audit: AuditLog;
  /** Counts refusals by kind (METRICS). */
  readonly metrics?: GateMetrics | undefined;
  readonly addressOf: AddressResolver;
}

/**
 * The user's principal, or why not. `accepted` names a refusal that still proves the password
 * (a passkey-only account confirming a change): it is answered as such, neither counted nor audited.
 */
export async function checkPassword(
  checks: PasswordChecks,
  request: Request,
  server: GateServer,
  login: { readonly username: string; readonly password: string; readonly path: string },
  accepted?: GateError,
): Promise<Principal | GateError> {
  if (checks.passwordTransport !== undefined && !checks.passwordTransport(request, server)) return INSECURE_PASSWORD;
  const client = checks.addressOf(request, server);
  const username = login.username.normalize("NFC");
  // A locked account answers 429 before any argon2 work.
  const locked = checks.guard.retryAfter(client, `user:${username}`);
  if (locked > 0) return tooManyAttempts(locked);
  const who = await checks.authenticatePassword(new BasicCredentials(username, preparePassword(login.password)), client);
  if (!(who instanceof GateError) || who === accepted) return who;
  return settleRefusal(checks, { error: who, address: client, path: login.path, username });
}
