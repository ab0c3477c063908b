/**
 * A local OAuth2 authorization server (on fastify) that answers the four CRMs'
 * authorize, token and revoke endpoints the way their documentation describes, so the
 * Connect flow and revoke run through the real axios client. The authorize endpoints
 * consent at once and redirect back with a code (or with error=access_denied when
 * `deny` is set). Every request is recorded; tokens are random and known to the test.
 *
 * Documented shapes followed:
 * - Salesforce web server flow with PKCE: GET /services/oauth2/authorize
 *   (response_type, client_id, redirect_uri, state, code_challenge); POST
 *   /services/oauth2/token (form: grant_type=authorization_code, code, client_id,
 *   client_secret, redirect_uri, code_verifier) → { access_token, refresh_token,
 *   instance_url, id, token_type: "Bearer", issued_at, signature }, no expires_in;
 *   errors 400 { error, error_description }; a code_verifier that does not match the
 *   challenge is refused.
 *   https://help.salesforce.com/s/articleView?id=remoteaccess_oauth_web_server_flow.htm
 *   Refresh: POST /services/oauth2/token (grant_type=refresh_token) → a new
 *   access_token, no refresh_token.
 *   https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_refresh_token_flow.htm
 *   Revoke: POST /services/oauth2/revoke (form: token) → 200; 400 { error:
 *   "invalid_token" }. https://help.salesforce.com/s/articleView?id=xcloud.remoteaccess_revoke_token.htm
 * - HubSpot: consent at https://app.hubspot.com/oauth/authorize (client_id,
 *   redirect_uri, scope, state); POST /oauth/v1/token (form: grant_type, client_id,
 *   client_secret, redirect_uri, code) → { access_token, refresh_token, expires_in,
 *   token_type }; errors 400 { status: "BAD_AUTH_CODE", message }.
 *   https://developers.hubspot.com/docs/api-reference/legacy/authentication/oauth-tokens/v1/guide
 *   Revoke: DELETE /oauth/v1/refresh-tokens/{token} → 204, no body.
 *   https://developers.hubspot.com/docs/api-reference/auth-oauth-v1/refresh-tokens/delete-oauth-v1-refresh-tokens-token
 * - Zoho: GET {accounts}/oauth/v2/auth (scope, client_id, response_type, access_type=
 *   offline, redirect_uri, state); POST {accounts}/oauth/v2/token (form: grant_type,
 *   client_id, client_secret, redirect_uri, code) → { access_token, refresh_token,
 *   api_domain, token_type, expires_in }; a bad code is answered 200 { error:
 *   "invalid_code" }. https://www.zoho.com/crm/developer/docs/api/v8/access-refresh.html
 *   Revoke: POST {accounts}/oauth/v2/token/revoke?token= → { status: "success" }; 400
 *   for an unknown token. https://www.zoho.com/crm/developer/docs/api/v8/revoke-tokens.html
 * - Pipedrive: GET https://oauth.pipedrive.com/oauth/authorize (client_id,
 *   redirect_uri, state); POST /oauth/token with Authorization: Basic
 *   base64(client_id:client_secret) (form: grant_type, code, redirect_uri) → {
 *   access_token, token_type, refresh_token, scope, expires_in, api_domain }.
 *   https://developers.pipedrive.com/docs/api/v1/Oauth
 *   Revoke (RFC 7009): POST /oauth/revoke, Basic auth, form: token, token_type_hint.
 *   https://pipedrive.readme.io/docs/app-uninstallation
 */
import { createHash, randomBytes } from "node:crypto";
import type http from "node:http";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { createFakeApp, listenLocal, rawBody, sendRaw } from "./fastify-app";

export interface OAuthRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  form: URLSearchParams;
}

interface Grant {
  redirectUri: string;
  challenge: string | null;
  used: boolean;
}

type Reply = { status: number; body?: unknown; location?: string };

export class FakeOAuthServer {
  readonly requests: OAuthRequest[] = [];
  /** Tokens issued, valid until revoked. */
  readonly access = new Set<string>();
  readonly refresh = new Set<string>();
  readonly revoked: string[] = [];
  /** Authorize answers error=access_denied (the user clicked Deny). */
  deny = false;
  url = "";
  private readonly codes = new Map<string, Grant>();
  private app: FastifyInstance | null = null;

  constructor(
    readonly clientId = "fake-client-id",
    readonly clientSecret = "fake-client-secret-0123",
  ) {}

  async start(): Promise<this> {
    const app = createFakeApp(async (req, reply) => this.dispatch(req, reply));
    this.url = await listenLocal(app);
    this.app = app;
    return this;
  }

  async stop(): Promise<void> {
    if (!this.app) return;
    const app = this.app;
    this.app = null;
    await app.close();
  }

  /** Every token value the fake issued (to search replies and logs for). */
  issuedTokens(): string[] {
    return [...this.access, ...this.refresh, ...this.revoked];
  }

  private dispatch(req: FastifyRequest, res: FastifyReply): void {
    const url = new URL(req.url ?? "/", this.url);
    const request: OAuthRequest = {
      method: req.method ?? "GET",
      path: url.pathname,
      query: url.searchParams,
      headers: req.headers,
      form: new URLSearchParams(rawBody(req)),
    };
    this.requests.push(request);
    const reply = this.handle(request);
    const headers: Record<string, string> = reply.location ? { Location: reply.location } : {};
    if (reply.body === undefined) {
      sendRaw(res, reply.status, headers);
      return;
    }
    sendRaw(
      res,
      reply.status,
      { ...headers, "Content-Type": "application/json" },
      JSON.stringify(reply.body),
    );
  }

  private handle(req: OAuthRequest): Reply {
    const { method, path } = req;
    if (
      method === "GET" &&
      ["/services/oauth2/authorize", "/oauth/authorize", "/oauth/v2/auth"].includes(path)
    )
      return this.authorize(req);
    if (method === "POST" && path === "/services/oauth2/token") return this.salesforceToken(req);
    if (method === "POST" && path === "/oauth/v1/token") return this.hubspotToken(req);
    if (method === "POST" && path === "/oauth/v2/token") return this.zohoToken(req);
    if (method === "POST" && path === "/oauth/token") return this.pipedriveToken(req);
    if (method === "POST" && path === "/services/oauth2/revoke")
      return this.revoke(
        req.form.get("token"),
        { status: 200 },
        { status: 400, body: { error: "invalid_token", error_description: "invalid token" } },
      );
    if (method === "DELETE" && path.startsWith("/oauth/v1/refresh-tokens/"))
      return this.revoke(
        decodeURIComponent(path.slice("/oauth/v1/refresh-tokens/".length)),
        { status: 204 },
        { status: 404, body: { status: "error", message: "refresh token not found" } },
      );
    if (method === "POST" && path === "/oauth/v2/token/revoke")
      return this.revoke(
        req.query.get("token"),
        { status: 200, body: { status: "success" } },
        { status: 400, body: { error: "invalid_token" } },
      );
    if (method === "POST" && path === "/oauth/revoke") {
      if (!this.basicOk(req)) return { status: 401, body: { error: "invalid_client" } };
      return this.revoke(
        req.form.get("token"),
        { status: 200 },
        { status: 400, body: { error: "invalid_token" } },
      );
    }
    return { status: 404, body: { error: "not_found", error_description: `${method} ${path}` } };
  }

  private authorize(req: OAuthRequest): Reply {
    const q = req.query;
    const redirect = q.get("redirect_uri");
    if (q.get("client_id") !== this.clientId || !redirect)
      return { status: 400, body: { error: "invalid_client_id" } };
    const back = new URL(redirect);
    if (q.get("state")) back.searchParams.set("state", q.get("state")!);
    if (this.deny) {
      back.searchParams.set("error", "access_denied");
      back.searchParams.set("error_description", "end-user denied authorization");
      return { status: 302, location: back.toString() };
    }
    const code = `code-${randomBytes(12).toString("hex")}`;
    const method = q.get("code_challenge_method");
    this.codes.set(code, {
      redirectUri: redirect,
      challenge: q.get("code_challenge") && method === "S256" ? q.get("code_challenge") : null,
      used: false,
    });
    back.searchParams.set("code", code);
    return { status: 302, location: back.toString() };
  }

  /** Checks the code grant; returns an error text or null. */
  private checkCode(form: URLSearchParams, viaBasic = false): string | null {
    if (form.get("grant_type") !== "authorization_code") return "unsupported grant_type";
    if (
      !viaBasic &&
      (form.get("client_id") !== this.clientId || form.get("client_secret") !== this.clientSecret)
    )
      return "invalid client credentials";
    const grant = this.codes.get(form.get("code") ?? "");
    if (!grant || grant.used) return "invalid authorization code";
    if (grant.redirectUri !== form.get("redirect_uri")) return "redirect_uri mismatch";
    if (grant.challenge) {
      const verifier = form.get("code_verifier");
      if (!verifier) return "code_verifier missing";
      if (createHash("sha256").update(verifier).digest("base64url") !== grant.challenge)
        return "invalid code verifier";
    }
    grant.used = true;
    return null;
  }

  private issue(): { access: string; refresh: string } {
    const access = `at-${randomBytes(18).toString("hex")}`;
    const refresh = `rt-${randomBytes(18).toString("hex")}`;
    this.access.add(access);
    this.refresh.add(refresh);
    return { access, refresh };
  }

  /**
   * grant_type=refresh_token: a new access token. Salesforce and Zoho answer without
   * a refresh token (the old one stays valid); HubSpot returns the same one; this fake
   * rotates Pipedrive's, so callers must keep what comes back.
   */
  private refreshGrant(req: OAuthRequest, provider: string, viaBasic = false): Reply {
    const form = req.form;
    const clientOk =
      viaBasic ||
      (form.get("client_id") === this.clientId && form.get("client_secret") === this.clientSecret);
    const old = form.get("refresh_token") ?? "";
    if (!clientOk || !this.refresh.has(old))
      return {
        status: 400,
        body: { error: "invalid_grant", error_description: "expired access/refresh token" },
      };
    const access = `at-${randomBytes(18).toString("hex")}`;
    this.access.add(access);
    const body: Record<string, unknown> = { access_token: access, token_type: "Bearer" };
    if (provider === "salesforce") body.instance_url = this.url;
    else body.expires_in = 3600;
    if (provider === "zoho" || provider === "pipedrive") body.api_domain = this.url;
    if (provider === "hubspot") body.refresh_token = old;
    if (provider === "pipedrive") {
      const rotated = `rt-${randomBytes(18).toString("hex")}`;
      this.refresh.delete(old);
      this.refresh.add(rotated);
      body.refresh_token = rotated;
    }
    return { status: 200, body };
  }

  private salesforceToken(req: OAuthRequest): Reply {
    if (req.form.get("grant_type") === "refresh_token") return this.refreshGrant(req, "salesforce");
    const error = this.checkCode(req.form);
    if (error) return { status: 400, body: { error: "invalid_grant", error_description: error } };
    const t = this.issue();
    return {
      status: 200,
      body: {
        access_token: t.access,
        refresh_token: t.refresh,
        signature: randomBytes(16).toString("base64"),
        scope: "refresh_token api",
        instance_url: `${this.url}`,
        id: `${this.url}/id/00Dxx0000001gPL/005xx000001Sv6e`,
        token_type: "Bearer",
        issued_at: String(Date.now()),
      },
    };
  }

  private hubspotToken(req: OAuthRequest): Reply {
    if (req.form.get("grant_type") === "refresh_token") return this.refreshGrant(req, "hubspot");
    const error = this.checkCode(req.form);
    if (error) return { status: 400, body: { status: "BAD_AUTH_CODE", message: error } };
    const t = this.issue();
    return {
      status: 200,
      body: {
        token_type: "bearer",
        refresh_token: t.refresh,
        access_token: t.access,
        expires_in: 1800,
      },
    };
  }

  private zohoToken(req: OAuthRequest): Reply {
    if (req.form.get("grant_type") === "refresh_token") return this.refreshGrant(req, "zoho");
    const error = this.checkCode(req.form);
    if (error) return { status: 200, body: { error: "invalid_code" } };
    const t = this.issue();
    return {
      status: 200,
      body: {
        access_token: t.access,
        refresh_token: t.refresh,
        scope: "ZohoCRM.modules.ALL",
        api_domain: this.url,
        token_type: "Bearer",
        expires_in: 3600,
      },
    };
  }

  private basicOk(req: OAuthRequest): boolean {
    const expected = `Basic ${Buffer.from(`${this.clientId}:${this.clientSecret}`).toString("base64")}`;
    return req.headers.authorization === expected;
  }

  private pipedriveToken(req: OAuthRequest): Reply {
    if (!this.basicOk(req))
      return {
        status: 401,
        body: { success: false, message: "Invalid client", error: "unauthorized" },
      };
    if (req.form.get("grant_type") === "refresh_token")
      return this.refreshGrant(req, "pipedrive", true);
    const error = this.checkCode(req.form, true);
    if (error)
      return { status: 400, body: { success: false, message: error, error: "invalid_grant" } };
    const t = this.issue();
    return {
      status: 200,
      body: {
        access_token: t.access,
        token_type: "Bearer",
        refresh_token: t.refresh,
        scope: "base,deals:full",
        expires_in: 3599,
        api_domain: this.url,
      },
    };
  }

  private revoke(token: string | null, ok: Reply, unknown: Reply): Reply {
    if (!token || (!this.refresh.has(token) && !this.access.has(token))) return unknown;
    this.refresh.delete(token);
    this.access.delete(token);
    this.revoked.push(token);
    return ok;
  }
}
