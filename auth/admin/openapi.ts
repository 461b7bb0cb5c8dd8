/**
 * The OpenAPI 3.1 document of the admin API, generated from the endpoints' own zod schemas (zod 4's
 * JSON Schema output, draft 2020-12 as OpenAPI 3.1 uses): the document cannot drift from what the
 * endpoints accept and answer.
 */
import { z } from "zod";
import { ADMIN_API, type AdminEndpoint } from "./endpoints.ts";

const ERROR_SCHEMA = {
  type: "object",
  properties: {
    detail: { type: "string", description: "What went wrong, in words (401s keep the seed's 'Invalid or missing token')" },
    code: { type: "string", description: "Stable machine code: invalid_request, not_found, conflict, insufficient_scope, …" },
    description: { type: "string" },
  },
  required: ["detail", "code"],
} as const;

const REFUSALS = {
  "400": "The body is not JSON, or a field is wrong (the detail names each field)",
  "401": "No valid credential",
  "403": "The credential lacks the admin scope, or a cookie request came without an allowed Origin (CSRF)",
  "404": "No such record",
  "409": "The record's state does not allow it, or it needs confirm: true",
  "429": "Too many failed attempts from this client",
  "503": "The store cannot be reached; retry shortly",
} as const;

/** A schema as JSON Schema without its own `$schema` (the document says which dialect). */
function jsonSchema(schema: z.ZodType, io: "input" | "output"): Record<string, unknown> {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: "any" }) as Record<string, unknown>;
  return rest;
}

function describeOperation(declared: AdminEndpoint) {
  const refusals = Object.fromEntries(
    Object.entries(REFUSALS).map(([status, description]) => [
      status,
      { description, content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } },
    ]),
  );
  return {
    summary: declared.summary,
    security: [{ bearer: [] }, { xAuthToken: [] }, { session: [] }],
    ...(declared.body === undefined
      ? {}
      : { requestBody: { required: true, content: { "application/json": { schema: jsonSchema(declared.body, "input") } } } }),
    responses: {
      [String(declared.status)]: {
        description: "Done",
        content: { "application/json": { schema: jsonSchema(declared.answer, "output") } },
      },
      ...refusals,
    },
  };
}

export function buildOpenApiDocument(endpoints: readonly AdminEndpoint[], version: string) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const declared of endpoints) {
    const path = `${ADMIN_API}${declared.path}`;
    paths[path] = { ...paths[path], [declared.method.toLowerCase()]: describeOperation(declared) };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "tokengate admin API",
      version,
      description: "Needs the admin scope (or *); cookie callers also need an allowed Origin.",
    },
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    paths,
    components: {
      schemas: { Error: ERROR_SCHEMA },
      securitySchemes: {
        bearer: { type: "http", scheme: "bearer", description: "An API key, an access token or the bootstrap token" },
        xAuthToken: { type: "apiKey", in: "header", name: "X-Auth-Token" },
        session: { type: "apiKey", in: "cookie", name: "tgs", description: "The sign-in cookie (__Host-tgs over TLS)" },
      },
    },
  };
}
