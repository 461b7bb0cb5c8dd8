/**
 * The admin API's endpoints as data: each declares its method and path, the zod schema of its
 * JSON body and of its answer, and what it does. From that one declaration come the route (scope
 * `admin`, the gate's whole authentication and CSRF rules for cookie callers), the validation (a
 * 400 naming every field at fault), the audit line of every change (with who made it), and the
 * OpenAPI document (openapi.ts).
 */
import { z } from "zod";
import type { Clock } from "../core/clock.ts";
import { GateError } from "../core/errors.ts";
import type { Principal } from "../core/principal.ts";
import type { AuditLog } from "../guard/audit.ts";
import { answerStoreFailures, jsonResponse, readJsonObject, toResponse } from "../http/responses.ts";
import type { ProtectedRoute } from "../http/routes.ts";
import { AdminProblem } from "./keys.ts";

export const ADMIN_API = "/admin/api";
const NOT_HERE = new GateError("not_found", "Not Found");
import { ADMIN_SCOPE } from "../core/principal.ts";
export { ADMIN_SCOPE };

/** Where a set of endpoints is served and the scope it needs: the admin API's, unless said otherwise. */
export interface EndpointMount {
  readonly prefix: string;
  readonly scope: string;
}

export interface AdminCall<Input> {
  readonly input: Input;
  readonly principal: Principal;
  readonly now: number;
}

/** What an endpoint answers: its body, or why not. */
export type AdminResult<Output> = Output | AdminProblem | GateError;

export interface AdminEndpoint<Input = unknown, Output = unknown> {
  readonly method: "GET" | "POST";
  /** Under ADMIN_API. */
  readonly path: string;
  readonly summary: string;
  /** The JSON body's schema (POST); a GET takes none. */
  readonly body?: z.ZodType<Input>;
  readonly answer: z.ZodType<Output>;
  readonly status: 200 | 201;
  /** A change is audited (`admin.action`) with the acting principal and what it touched; reads are not. */
  readonly audit?: { readonly action: string; readonly detail: (output: Output) => AuditDetail };
  run(call: AdminCall<Input>): Promise<AdminResult<Output>>;
}

/** Declares an endpoint with its types tied to its schemas. */
export const endpoint = <Input, Output>(declared: AdminEndpoint<Input, Output>): AdminEndpoint<Input, Output> => declared;

/** zod's issues as one sentence that names each field (`name: …; scopes: …`); never the values sent. */
function describeIssues(error: z.ZodError): string {
  const parts = error.issues.map((issue) => `${issue.path.length === 0 ? "body" : issue.path.join(".")}: ${issue.message}`);
  return `Invalid request: ${parts.join("; ")}`;
}

/** An operation's problem as a refusal of the gate's one error family. */
export function problemToError(problem: AdminProblem): GateError {
  if (problem.kind === "not_found") return new GateError("not_found", problem.message);
  if (problem.kind === "conflict") return new GateError("conflict", problem.message);
  return new GateError("invalid_request", `Invalid request: ${problem.field ?? "body"}: ${problem.message}`);
}

export interface AdminContext {
  readonly now: Clock;
  readonly audit: AuditLog;
  /**
   * Whether a host is one the routes file gives to a service: the admin API is not answered there.
   * A service's page runs on that origin with the person's cookie for it, and must not reach
   * lasting control of the gate (minting keys, adding admins) through it.
   */
  readonly servesServiceHost: (host: string | null) => boolean;
  /** Brings the keyring up to date after a change, so it holds on the very next request (a new key works at once). */
  readonly afterChange: () => Promise<unknown>;
}

/** What an audit line says of a change: the acting principal and the input's non-secret fields. */
export type AuditDetail = Readonly<Record<string, string | number | boolean | null | undefined>>;

async function readInput<Input>(request: Request, schema: z.ZodType<Input> | undefined): Promise<Input | GateError> {
  if (schema === undefined) return undefined as Input;
  const body = await readJsonObject(request);
  if (body instanceof GateError) return body;
  const parsed = schema.safeParse(body);
  return parsed.success ? parsed.data : new GateError("invalid_request", describeIssues(parsed.error));
}

/** One endpoint's handler: body validated, operation run, a change audited and made visible at once. */
function handlerOf<Input, Output>(declared: AdminEndpoint<Input, Output>, context: AdminContext): ProtectedRoute["handle"] {
  return async (request, principal) => {
    if (context.servesServiceHost(request.headers.get("host"))) return toResponse(NOT_HERE);
    const input = await readInput(request, declared.body);
    if (input instanceof GateError) return toResponse(input);
    const result = await declared.run({ input, principal, now: context.now() });
    if (result instanceof GateError) return toResponse(result);
    if (result instanceof AdminProblem) return toResponse(problemToError(result));
    if (declared.audit !== undefined) {
      const { action, detail } = declared.audit;
      context.audit.record("admin.action", { action, by: principal.id, by_kind: principal.kind, ...detail(result) });
      // The change is committed: a failed look at the store must not turn its answer (a new key's only copy) into a 503. The poll catches up.
      await context.afterChange().catch(() => undefined);
    }
    return jsonResponse(declared.status, JSON.stringify(result));
  };
}

/**
 * The endpoints as routes of the gate, one per path (GET and POST of `/keys` share one): by
 * default under ADMIN_API with scope `admin` (or `*`), each method to its endpoint.
 */
export function toAdminRoutes(
  endpoints: readonly AdminEndpoint[],
  context: AdminContext,
  mount: EndpointMount = { prefix: ADMIN_API, scope: ADMIN_SCOPE },
): ProtectedRoute[] {
  const byPath = new Map<string, Map<string, ProtectedRoute["handle"]>>();
  for (const declared of endpoints) {
    const methods = byPath.get(declared.path) ?? new Map<string, ProtectedRoute["handle"]>();
    methods.set(declared.method, handlerOf(declared, context));
    if (declared.method === "GET") methods.set("HEAD", methods.get("GET")!);
    byPath.set(declared.path, methods);
  }
  return [...byPath].map(([path, methods]) => ({
    kind: "http",
    path: `${mount.prefix}${path}`,
    methods: [...methods.keys()],
    scope: mount.scope,
    // The gate answers 405 for any other method before this runs.
    handle: answerStoreFailures((request, principal, server) => methods.get(request.method)!(request, principal, server)),
  }));
}
