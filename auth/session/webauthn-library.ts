/**
 * @simplewebauthn/server, loaded on the first passkey ceremony rather than at startup: it brings
 * ASN.1 and X.509 parsing that costs about 60 ms to import, which every start of the gate (a Pi
 * included) would otherwise pay whether or not anyone uses a passkey. Its X.509 layer needs a
 * Reflect metadata polyfill loaded first; bundled (the compiled binary) the import order is no
 * longer the source order, so the polyfill is loaded here, explicitly, before it.
 */
type WebAuthnLibrary = typeof import("@simplewebauthn/server");

let loading: Promise<WebAuthnLibrary> | undefined;

export function loadWebAuthn(): Promise<WebAuthnLibrary> {
  loading ??= import("reflect-metadata").then(() => import("@simplewebauthn/server"));
  return loading;
}
