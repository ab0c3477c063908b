/**
 * What every Tributary admin route shares: permission checks that answer 403 to a
 * signed-in user without the permission, errors as `{error: {code, message}}` with the
 * right status, and the Test connection form's credentials.
 */
import type { Request, RequestHandler, Response } from "express";
import type { NodeRedApi } from "../red";
import { TributaryError } from "../db/errors";

export class ApiError extends Error {
  constructor(
    readonly status: 400 | 404 | 409,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A signed-in user's scopes must include `permission` (or `*`, or `<area>.*`). */
export function requirePermission(permission: string): RequestHandler {
  const area = permission.slice(0, permission.indexOf("."));
  return (req, res, next) => {
    const info = (req as Request & { authInfo?: { scope?: string | string[] } }).authInfo;
    if (!info) return next(); // adminAuth off
    const scopes = Array.isArray(info.scope) ? info.scope : [info.scope ?? ""];
    if (scopes.some((s) => s === "*" || s === permission || s === `${area}.*`)) return next();
    res.status(403).json({
      error: {
        code: "forbidden",
        message: `this user may not do that: it needs the ${permission} permission`,
      },
    });
  };
}

/**
 * Handlers for a route needing `permission`. Node-RED answers 401 both for "who are
 * you?" and for "not allowed"; actions tell the second apart: a signed-in user without
 * the write permission gets 403.
 */
export function allow(RED: NodeRedApi, permission: string): RequestHandler[] {
  const authenticated = (name: string): RequestHandler =>
    (RED.auth?.needsPermission(name) as RequestHandler | undefined) ??
    ((_req, _res, next) => next());
  if (permission.endsWith(".read")) return [authenticated(permission)];
  const area = permission.slice(0, permission.indexOf("."));
  return [authenticated(`${area}.read`), requirePermission(permission)];
}

/** Answers a failed request: 4xx with the message for what the caller can fix, else 500. */
export function sendError(RED: NodeRedApi, req: Request, res: Response, err: unknown): void {
  if (err instanceof ApiError) {
    res.status(err.status).json({ error: { code: err.code, message: err.message } });
    return;
  }
  if (err instanceof TributaryError) {
    res.status(400).json({ error: { code: err.code, message: err.message } });
    return;
  }
  RED.log.error(`tributary API ${req.method} ${req.path}: ${(err as Error).stack ?? err}`);
  res
    .status(500)
    .json({ error: { code: "internal", message: "internal error; see the Node-RED log" } });
}

/**
 * A Test connection form: its config, and its credentials where a blank or unchanged
 * (`__PWRD__`) secret is taken from the deployed node, so the stored one is never sent.
 */
export function testForm(
  req: Request,
  RED: NodeRedApi,
  secretFields: readonly string[],
): {
  id: string;
  config: Record<string, unknown>;
  credentials: Record<string, string | undefined>;
} {
  const body = (req.body ?? {}) as {
    id?: string;
    config?: Record<string, unknown>;
    credentials?: Record<string, string>;
  };
  if (!body.config || typeof body.config !== "object")
    throw new ApiError(400, "bad-request", "config is missing: send the form's values");
  const stored = (body.id ? RED.nodes.getCredentials(body.id) : null) ?? {};
  const credentials: Record<string, string | undefined> = { ...body.credentials };
  for (const field of secretFields) {
    const sent = credentials[field];
    if (!sent || sent === "__PWRD__") credentials[field] = stored[field];
  }
  return { id: body.id ?? "", config: body.config, credentials };
}
