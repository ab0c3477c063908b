/**
 * The Connect button's admin routes (OAuth2 authorization code) and revoke:
 *
 *   GET  <admin>/tributary/oauth/:connectionId/start    → { url, redirectUri, expiresAt }
 *   GET  <admin>/tributary/oauth/callback               ← the provider's redirect
 *   POST <admin>/tributary/oauth/:connectionId/revoke   { reason }
 *   POST <admin>/tributary/connections/:connectionId/revoke   (the same; DESIGN.md §5)
 *
 * start and revoke are behind adminAuth (tributary-crm-connection.write; a read-only
 * user gets 403). The callback cannot be: Node-RED's needsPermission authenticates a
 * request by its `Authorization: Bearer` header (passport bearer strategy), which the
 * editor's own XHRs send, but the provider redirects the browser by a plain top-level
 * GET, which carries no such header — behind needsPermission every callback would get
 * 401. The callback is therefore protected by its `state` instead: 32 random bytes
 * made by `start` for a signed-in user with write permission, remembered here with the
 * PKCE verifier, usable once, for 10 minutes, and only together with the cookie that
 * `start` set in the same browser (SameSite=Lax, which browsers send on that redirect).
 * Without a valid state the callback does nothing but answer 400.
 *
 * Tokens, codes and secrets never appear in a reply or a log line.
 */
import type { Request, Response, Router } from "express";
import type { AxiosInstance } from "axios";
import type { NodeRedApi } from "../red";
import { stateStoreFor, type StateStore } from "../state-store";
import { TributaryError } from "../db/errors";
import { resolveEnv } from "../env";
import { PROVIDERS, type CrmSettings, type ProviderName } from "../crm/provider";
import {
  AuthorizationRequests,
  OAuthError,
  OAuthStateError,
  authorizeUrl,
  exchangeCode,
  oauthEndpoints,
  zohoTokenUrl,
  type OAuthApp,
} from "../crm/oauth";
import { vaultFor, TokenVaultError } from "../crm/token-vault";
import { revokeConnection } from "../crm/revoke";
import { allow } from "./common";

export interface OAuthRouteOptions {
  /** A connection's OAuth app; default: the deployed tributary-crm-connection node. */
  resolveConnection?: (connectionId: string) => Promise<OAuthApp | undefined>;
  /** Default: the process's state store in the user directory (or TRIBUTARY_STATE_URL). */
  store?: () => Promise<StateStore>;
  /** Default: Node-RED's credentialSecret (or the secret Node-RED generated). */
  secret?: () => string;
  /**
   * The address browsers reach the editor at (httpAdminRoot included), for the
   * callback URL behind a proxy; default TRIBUTARY_PUBLIC_URL, else the request's host.
   */
  publicUrl?: string;
  http?: AxiosInstance;
  requests?: AuthorizationRequests;
}

const PERMISSION = "tributary-crm-connection.write";
const registered = new WeakSet<object>();

type Json = { status?: number; body: unknown; headers?: Record<string, string | string[]> };

class RouteError extends Error {
  constructor(
    readonly status: 400 | 403 | 404 | 409 | 502,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Registers the routes on RED.httpAdmin; call once from the pack's node registration. */
export function registerOAuthRoutes(RED: NodeRedApi, options: OAuthRouteOptions = {}): void {
  const app = RED.httpAdmin as Router | undefined;
  if (!app || registered.has(app)) return;
  registered.add(app);

  const requests = options.requests ?? new AuthorizationRequests();
  const store = options.store ?? (() => stateStoreFor(RED.settings.userDir));
  const secret = options.secret ?? (() => credentialSecretOf(RED.settings));
  const resolve = options.resolveConnection ?? ((id: string) => deployedOAuthApp(RED, id));
  const publicUrl = options.publicUrl ?? process.env.TRIBUTARY_PUBLIC_URL;

  const guarded = allow(RED, PERMISSION);

  const json =
    (handler: (req: Request, res: Response) => Promise<Json>) =>
    async (req: Request, res: Response) => {
      try {
        const { status = 200, body } = await handler(req, res);
        res.status(status).json(body);
      } catch (err) {
        const known = knownError(err);
        if (known) {
          res.status(known.status).json({ error: { code: known.code, message: known.message } });
          return;
        }
        RED.log.error(`tributary OAuth ${req.method} ${req.path}: ${(err as Error).message}`);
        res
          .status(500)
          .json({ error: { code: "internal", message: "internal error; see the Node-RED log" } });
      }
    };

  app.get(
    "/tributary/oauth/:connectionId/start",
    ...guarded,
    json(async (req, res) => {
      const connectionId = req.params.connectionId;
      const oauthApp = await resolve(connectionId);
      if (!oauthApp)
        throw new RouteError(
          404,
          "not-found",
          `no deployed CRM connection ${connectionId} with OAuth2: set its auth to OAuth2, deploy, then Connect`,
        );
      if (!oauthApp.clientId || !oauthApp.clientSecret)
        throw new RouteError(
          400,
          "bad-config",
          "the connection has no client id or client secret: enter those of the app registered with the provider, deploy, then Connect",
        );
      secret(); // fails now, not after the user consented, when there is nowhere to seal tokens
      const endpoints = oauthEndpoints(oauthApp);
      const base = adminBase(req);
      const redirectUri = `${publicUrl ? publicUrl.replace(/\/+$/, "") : `${req.protocol}://${req.get("host")}${base}`}/tributary/oauth/callback`;
      const started = requests.start({
        connectionId,
        provider: oauthApp.provider,
        redirectUri,
        user: userOf(req),
        pkce: endpoints.pkce,
      });
      const secure = req.secure || redirectUri.startsWith("https:");
      res.setHeader(
        "Set-Cookie",
        `${AuthorizationRequests.cookieName(started.state)}=${started.binding}; Path=${base}/tributary/oauth/callback; ` +
          `Max-Age=${Math.round(requests.ttlMs / 1000)}; HttpOnly; SameSite=Lax${secure ? "; Secure" : ""}`,
      );
      res.setHeader("Cache-Control", "no-store");
      const url = authorizeUrl(oauthApp, {
        redirectUri,
        state: started.state,
        ...(started.codeChallenge ? { codeChallenge: started.codeChallenge } : {}),
      });
      return { body: { url, redirectUri, expiresAt: new Date(started.expiresAt).toISOString() } };
    }),
  );

  // No needsPermission: see the top of this file.
  app.get("/tributary/oauth/callback", async (req: Request, res: Response) => {
    const q = req.query as Record<string, unknown>;
    const state = typeof q.state === "string" ? q.state : undefined;
    res.setHeader("Cache-Control", "no-store");
    let connectionId: string | undefined;
    try {
      const pending = requests.take(
        state,
        state ? cookie(req, AuthorizationRequests.cookieName(state)) : undefined,
      );
      connectionId = pending.connectionId;
      if (state) clearCookie(res, req, AuthorizationRequests.cookieName(state));
      if (typeof q.error === "string") {
        const description = typeof q.error_description === "string" ? q.error_description : "";
        throw new OAuthError(
          "denied",
          `the provider did not authorize the connection: ${q.error}${description ? ` (${description})` : ""}`,
          400,
        );
      }
      if (typeof q.code !== "string" || !q.code)
        throw new OAuthError("no-code", "the provider's redirect has no authorization code", 400);
      const oauthApp = await resolve(pending.connectionId);
      if (!oauthApp || oauthApp.provider !== pending.provider)
        throw new OAuthError(
          "changed",
          `connection ${pending.connectionId} was removed or changed since Connect was clicked: deploy it and Connect again`,
          400,
        );
      const accountsServer = typeof q["accounts-server"] === "string" ? q["accounts-server"] : "";
      const tokenUrl = zohoTokenUrl(oauthApp, accountsServer);
      const tokens = await exchangeCode(
        oauthApp,
        {
          code: q.code,
          redirectUri: pending.redirectUri,
          ...(pending.codeVerifier ? { codeVerifier: pending.codeVerifier } : {}),
          ...(tokenUrl ? { tokenUrl } : {}),
        },
        options.http ? { http: options.http } : {},
      );
      const vault = vaultFor(secret(), await store());
      await vault.forConnection(pending.connectionId, pending.provider).save(tokens);
      RED.log.info(
        `tributary: CRM connection ${pending.connectionId} (${pending.provider}) connected by ${pending.user}`,
      );
      page(
        res,
        200,
        "Connected",
        `The ${label(pending.provider)} connection is authorized and its tokens are stored encrypted.`,
        {
          connectionId: pending.connectionId,
          ok: true,
        },
      );
    } catch (err) {
      const known = knownError(err);
      const status = known?.status === 502 ? 502 : known ? 400 : 500;
      const message = known?.message ?? "internal error; see the Node-RED log";
      // The message never holds the code or a token (see OAuthError); the URL does: not logged.
      RED.log.warn(`tributary: OAuth callback refused (${status}): ${message}`);
      if (!known) RED.log.error(`tributary: OAuth callback: ${(err as Error).message}`);
      page(res, status, "Not connected", message, {
        ...(connectionId ? { connectionId } : {}),
        ok: false,
      });
    }
  });

  const revoke = json(async (req) => {
    const connectionId = req.params.connectionId;
    const body = (req.body ?? {}) as { reason?: unknown };
    if (typeof body.reason !== "string" || !body.reason.trim())
      throw new RouteError(
        400,
        "bad-request",
        'say why: {"reason": "..."} is recorded in the audit',
      );
    if (body.reason.length > 1000)
      throw new RouteError(400, "bad-request", "reason is longer than 1000 characters");
    const stateStore = await store();
    const oauthApp = await resolve(connectionId);
    const stored = await stateStore.getToken(connectionId);
    if (!oauthApp && !stored)
      throw new RouteError(
        404,
        "not-found",
        `no CRM connection ${connectionId} with stored tokens`,
      );
    const result = await revokeConnection({
      connectionId,
      ...(oauthApp ? { app: oauthApp } : {}),
      store: stateStore,
      vault: vaultFor(secret(), stateStore),
      by: userOf(req),
      reason: body.reason,
      ...(options.http ? { http: options.http } : {}),
    });
    RED.log.info(
      `tributary: CRM connection ${connectionId} revoked by ${userOf(req)} (provider: ${result.atProvider.status})`,
    );
    return { body: result };
  });
  app.post("/tributary/oauth/:connectionId/revoke", ...guarded, revoke);
  app.post("/tributary/connections/:connectionId/revoke", ...guarded, revoke);
}

function knownError(
  err: unknown,
): { status: 400 | 403 | 404 | 409 | 502; code: string; message: string } | undefined {
  if (err instanceof RouteError) return err;
  if (err instanceof OAuthError)
    return { status: err.status, code: err.code, message: err.message };
  if (err instanceof OAuthStateError)
    return { status: 400, code: "bad-state", message: err.message };
  if (err instanceof TokenVaultError) return { status: 409, code: err.code, message: err.message };
  if (err instanceof TributaryError) return { status: 400, code: err.code, message: err.message };
  return undefined;
}

/**
 * Node-RED's credential secret: the `credentialSecret` setting, or the one Node-RED
 * generated when none is set. Tokens are never stored unsealed, so with encryption
 * switched off (`credentialSecret: false`) Connect refuses.
 */
export function credentialSecretOf(settings: NodeRedApi["settings"]): string {
  const s = settings as { credentialSecret?: unknown; get?: (key: string) => unknown };
  const read = (key: string): unknown => {
    try {
      return s.get?.(key);
    } catch {
      return undefined; // "settings not available" before the runtime loaded them
    }
  };
  const configured = s.credentialSecret ?? read("credentialSecret");
  if (typeof configured === "string" && configured) return configured;
  if (configured !== false) {
    const generated = read("_credentialSecret");
    if (typeof generated === "string" && generated) return generated;
  }
  throw new TributaryError(
    "no-secret",
    "OAuth tokens are stored encrypted with Node-RED's credential secret, and there is none: " +
      "set credentialSecret in settings.js (hosted runtime: TRIBUTARY_CREDENTIAL_SECRET)",
  );
}

/** The OAuth app of a deployed tributary-crm-connection, however its node exposes it. */
async function deployedOAuthApp(RED: NodeRedApi, id: string): Promise<OAuthApp | undefined> {
  const node = RED.nodes.getNode(id) as
    | (Record<string, unknown> & {
        type?: string;
        credentials?: Record<string, string | undefined>;
      })
    | null;
  if (!node || node.type !== "tributary-crm-connection") return undefined;
  let settings: Partial<CrmSettings> & { scope?: string } = {};
  if (typeof node.crmSettings === "function")
    settings = (node.crmSettings as () => Partial<CrmSettings>)();
  else if (node.settings && typeof node.settings === "object")
    settings = node.settings as Partial<CrmSettings>;
  else {
    const creds = node.credentials ?? RED.nodes.getCredentials(id) ?? {};
    settings = {
      provider: node.provider as ProviderName,
      authType: node.authType as CrmSettings["authType"],
      baseUrl: typeof node.baseUrl === "string" ? resolveEnv(node.baseUrl) : "",
      clientId: resolveEnv(creds.clientId ?? ""),
      clientSecret: resolveEnv(creds.clientSecret ?? ""),
    };
  }
  if (!settings.provider || !PROVIDERS.includes(settings.provider)) return undefined;
  if (settings.authType && settings.authType !== "oauth2") return undefined;
  return {
    provider: settings.provider,
    clientId: settings.clientId ?? "",
    clientSecret: settings.clientSecret ?? "",
    baseUrl: settings.baseUrl ?? "",
    ...(typeof settings.scope === "string" && settings.scope ? { scope: settings.scope } : {}),
  };
}

function userOf(req: Request): string {
  const user = (req as Request & { user?: { username?: unknown } }).user;
  return typeof user?.username === "string" && user.username ? user.username : "anonymous";
}

/** The path the admin app is mounted at, from the request's own URL. */
function adminBase(req: Request): string {
  const path = (req.originalUrl || req.url).split("?")[0];
  const at = path.lastIndexOf("/tributary/oauth/");
  return at > 0 ? path.slice(0, at) : "";
}

function cookie(req: Request, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function clearCookie(res: Response, req: Request, name: string): void {
  const base = adminBase(req);
  res.setHeader(
    "Set-Cookie",
    `${name}=; Path=${base}/tributary/oauth/callback; Max-Age=0; HttpOnly; SameSite=Lax`,
  );
}

function label(provider: string): string {
  return (
    { salesforce: "Salesforce", hubspot: "HubSpot", pipedrive: "Pipedrive", zoho: "Zoho CRM" }[
      provider
    ] ?? provider
  );
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The page the Connect window shows. It tells the editor (its opener, same origin)
 * the outcome, so the connection's form can update, then the user closes it.
 */
function page(
  res: Response,
  status: number,
  title: string,
  message: string,
  outcome: { connectionId?: string; ok: boolean },
): void {
  const data = JSON.stringify({ type: "tributary-oauth", ...outcome, message }).replace(
    /</g,
    "\\u003c",
  );
  res
    .status(status)
    .type("html")
    .send(
      `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Tributary: ${escapeHtml(title)}</title></head>` +
        `<body style="font-family:sans-serif;margin:3em"><h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p>` +
        `<p>You can close this window.</p>` +
        `<script>try{window.opener&&window.opener.postMessage(${data},window.location.origin)}catch(e){}</script>` +
        `</body></html>`,
    );
}
