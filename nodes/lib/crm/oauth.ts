/**
 * OAuth2 authorization code flow for the four CRMs: where each provider's consent,
 * token and revoke endpoints are, PKCE, exchanging a code (and a refresh token) for
 * CrmTokens, and the server-side memory of flows under way (`state`). Plain code,
 * testable without Node-RED; the admin routes are in ../api/oauth-routes.ts.
 *
 * Errors carry the provider's error code and description, never a token, the
 * authorization code, the PKCE verifier or the client secret.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import axios, { type AxiosInstance } from "axios";
import { TributaryError, scrub } from "../db/errors";
import type { CrmTokens, ProviderName } from "./provider";

/** What the flow needs of a crm-connection (authType oauth2). */
export interface OAuthApp {
  provider: ProviderName;
  clientId: string;
  clientSecret: string;
  /**
   * The connection's base URL: Salesforce login URL (My Domain, sandbox), Zoho API
   * domain of the data centre, or any URL (a test fake, a proxy), which then serves
   * every OAuth endpoint of the provider. Empty: the provider's production hosts.
   */
  baseUrl?: string;
  /** Scopes to ask for; empty: the provider's default below. */
  scope?: string;
}

export interface OAuthEndpoints {
  authorize: string;
  token: string;
  /** Revokes a token; undefined where the provider has no endpoint. */
  revoke?: { method: "POST" | "DELETE"; url: (token: string) => string; form?: boolean };
  /** PKCE (S256) on the authorize and token requests. */
  pkce: boolean;
  /** Client credentials as HTTP Basic (Pipedrive) rather than in the form body. */
  basicAuth: boolean;
  /** Extra authorize parameters (Zoho: offline access, so a refresh token comes back). */
  authorizeParams: Record<string, string>;
  defaultScope: string;
}

function trimUrl(url: string | undefined): string {
  return (url ?? "").trim().replace(/\/+$/, "");
}

function hostOf(url: string): string {
  try {
    return new URL(url).hostname.toLowerCase();
  } catch {
    throw new TributaryError(
      "bad-config",
      `base URL "${url}" is not a URL: use https://host[:port]`,
    );
  }
}

/** Zoho's accounts server of the data centre a connection's API domain is in. */
function zohoAccounts(base: string): string {
  if (!base) return "https://accounts.zoho.com";
  const host = hostOf(base);
  if (/^accounts\.zoho(cloud)?\.[a-z.]+$/.test(host)) return base;
  const api = host.match(/^(?:www\.)?zohoapis\.([a-z.]+)$/);
  if (api)
    return api[1] === "ca" ? "https://accounts.zohocloud.ca" : `https://accounts.zoho.${api[1]}`;
  return base; // a fake or a proxy: it serves the accounts endpoints itself
}

/**
 * Each provider's endpoints (documentation cited in test/fakes/oauth.ts). A base URL
 * that is not one of the provider's own hosts replaces every host, which is how the
 * tests point the flow at a local fake.
 */
export function oauthEndpoints(app: OAuthApp): OAuthEndpoints {
  const base = trimUrl(app.baseUrl);
  switch (app.provider) {
    case "salesforce": {
      const login = base || "https://login.salesforce.com";
      return {
        authorize: `${login}/services/oauth2/authorize`,
        token: `${login}/services/oauth2/token`,
        revoke: { method: "POST", url: () => `${login}/services/oauth2/revoke`, form: true },
        pkce: true,
        basicAuth: false,
        authorizeParams: {},
        // The connected app decides the scopes; "refresh_token" must be among them.
        defaultScope: "",
      };
    }
    case "hubspot": {
      const own = !base || /(^|\.)(hubapi|hubspot)\.com$/.test(hostOf(base));
      const api = own ? "https://api.hubapi.com" : base;
      return {
        authorize: own ? "https://app.hubspot.com/oauth/authorize" : `${base}/oauth/authorize`,
        token: `${api}/oauth/v1/token`,
        revoke: {
          method: "DELETE",
          url: (token) => `${api}/oauth/v1/refresh-tokens/${encodeURIComponent(token)}`,
        },
        pkce: false,
        basicAuth: false,
        authorizeParams: {},
        // Must match the app's required scopes in HubSpot; override on the connection.
        defaultScope:
          "oauth crm.objects.contacts.read crm.objects.contacts.write crm.objects.companies.read " +
          "crm.objects.companies.write crm.objects.deals.read crm.objects.deals.write crm.schemas.contacts.read",
      };
    }
    case "zoho": {
      const accounts = zohoAccounts(base);
      return {
        authorize: `${accounts}/oauth/v2/auth`,
        token: `${accounts}/oauth/v2/token`,
        revoke: {
          method: "POST",
          url: (token) => `${accounts}/oauth/v2/token/revoke?token=${encodeURIComponent(token)}`,
        },
        pkce: false,
        basicAuth: false,
        // offline: a refresh token; consent: a refresh token again on a second Connect.
        authorizeParams: { access_type: "offline", prompt: "consent" },
        defaultScope:
          "ZohoCRM.modules.ALL,ZohoCRM.settings.ALL,ZohoCRM.users.READ,ZohoCRM.org.READ",
      };
    }
    case "pipedrive": {
      const own = !base || /(^|\.)pipedrive\.com$/.test(hostOf(base));
      const oauth = own ? "https://oauth.pipedrive.com" : base;
      return {
        authorize: `${oauth}/oauth/authorize`,
        token: `${oauth}/oauth/token`,
        revoke: { method: "POST", url: () => `${oauth}/oauth/revoke`, form: true },
        pkce: false,
        basicAuth: true,
        authorizeParams: {},
        defaultScope: "", // set in the app's Developer Hub entry
      };
    }
    default:
      throw new TributaryError(
        "bad-config",
        `provider "${String(app.provider)}" has no OAuth flow`,
      );
  }
}

export function createPkce(): { verifier: string; challenge: string } {
  // RFC 7636 §4.1: 43-128 characters of [A-Za-z0-9-._~]; 32 random bytes give 43.
  const verifier = randomBytes(32).toString("base64url");
  return { verifier, challenge: pkceChallenge(verifier) };
}

export function pkceChallenge(verifier: string): string {
  return createHash("sha256").update(verifier).digest("base64url");
}

export function authorizeUrl(
  app: OAuthApp,
  request: { redirectUri: string; state: string; codeChallenge?: string },
): string {
  const endpoints = oauthEndpoints(app);
  const url = new URL(endpoints.authorize);
  url.searchParams.set("response_type", "code");
  url.searchParams.set("client_id", app.clientId);
  url.searchParams.set("redirect_uri", request.redirectUri);
  url.searchParams.set("state", request.state);
  const scope = app.scope?.trim() || endpoints.defaultScope;
  if (scope) url.searchParams.set("scope", scope);
  for (const [k, v] of Object.entries(endpoints.authorizeParams)) url.searchParams.set(k, v);
  if (endpoints.pkce && request.codeChallenge) {
    url.searchParams.set("code_challenge", request.codeChallenge);
    url.searchParams.set("code_challenge_method", "S256");
  }
  return url.toString();
}

/** A refusal or an unreachable endpoint; `status` is what an HTTP route should answer. */
export class OAuthError extends TributaryError {
  constructor(
    code: string,
    message: string,
    readonly status: 400 | 502,
  ) {
    super(code, message);
    this.name = "OAuthError";
  }
}

interface TokenResponse {
  access_token?: unknown;
  refresh_token?: unknown;
  expires_in?: unknown;
  instance_url?: unknown;
  api_domain?: unknown;
  error?: unknown;
  error_description?: unknown;
  message?: unknown;
  status?: unknown;
}

const PROVIDER_LABEL: Record<ProviderName, string> = {
  salesforce: "Salesforce",
  hubspot: "HubSpot",
  pipedrive: "Pipedrive",
  zoho: "Zoho",
};

async function tokenRequest(
  app: OAuthApp,
  form: Record<string, string>,
  what: string,
  secrets: string[],
  options: { http?: AxiosInstance; tokenUrl?: string; now?: () => number },
): Promise<{ data: TokenResponse; at: number }> {
  const endpoints = oauthEndpoints(app);
  const url = options.tokenUrl ?? endpoints.token;
  const body = new URLSearchParams(form);
  const headers: Record<string, string> = {
    "Content-Type": "application/x-www-form-urlencoded",
    Accept: "application/json",
  };
  if (endpoints.basicAuth) {
    headers.Authorization = `Basic ${Buffer.from(`${app.clientId}:${app.clientSecret}`).toString("base64")}`;
  } else {
    body.set("client_id", app.clientId);
    body.set("client_secret", app.clientSecret);
  }
  const label = PROVIDER_LABEL[app.provider];
  const hide = [app.clientSecret, ...secrets];
  let response;
  try {
    response = await (options.http ?? axios).post<TokenResponse>(url, body.toString(), {
      headers,
      timeout: 30_000,
      maxRedirects: 0,
      validateStatus: () => true,
      responseType: "json",
    });
  } catch (err) {
    // The axios error holds the request (client secret, code): only its code leaves.
    const code = (err as { code?: string }).code ?? "network error";
    throw new OAuthError(
      "unreachable",
      `${label}'s token endpoint ${url} did not answer (${code}): check the connection's base URL and the network`,
      502,
    );
  }
  const data: TokenResponse =
    response.data && typeof response.data === "object" ? response.data : {};
  // Zoho answers some refusals with 200 and an `error` field.
  if (response.status >= 400 || data.error !== undefined || typeof data.access_token !== "string") {
    const reason = [data.error, data.error_description ?? data.message]
      .filter((v) => typeof v === "string" && v)
      .join(": ");
    const detail = scrub(reason || `HTTP ${response.status}`, hide);
    if (response.status >= 500)
      throw new OAuthError(
        "provider-error",
        `${label} failed to ${what} (${detail}); try again`,
        502,
      );
    throw new OAuthError(
      "refused",
      `${label} refused to ${what}: ${detail}. Check the client id and secret and the callback URL registered with ${label}, then Connect again`,
      400,
    );
  }
  return { data, at: (options.now ?? Date.now)() };
}

function toTokens(data: TokenResponse, at: number, previous?: CrmTokens): CrmTokens {
  const tokens: CrmTokens = { accessToken: data.access_token as string };
  const refresh =
    typeof data.refresh_token === "string" ? data.refresh_token : previous?.refreshToken;
  if (refresh) tokens.refreshToken = refresh;
  const expiresIn = Number(data.expires_in);
  if (Number.isFinite(expiresIn) && expiresIn > 0) tokens.expiresAt = at + expiresIn * 1000;
  // Salesforce: the org's instance; Zoho and Pipedrive: the account's API domain.
  const instance =
    typeof data.instance_url === "string"
      ? data.instance_url
      : typeof data.api_domain === "string"
        ? data.api_domain
        : previous?.instanceUrl;
  if (instance) tokens.instanceUrl = instance;
  return tokens;
}

/**
 * Zoho's redirect names the accounts server of the user's data centre
 * (`accounts-server`); the code must be exchanged there. Only a Zoho host is
 * accepted, so a forged parameter cannot send the code elsewhere.
 */
export function zohoTokenUrl(
  app: OAuthApp,
  accountsServer: string | undefined,
): string | undefined {
  if (app.provider !== "zoho" || !accountsServer) return undefined;
  const base = trimUrl(app.baseUrl);
  // A fake or a proxy as base URL serves the accounts endpoints itself.
  if (base && !/(^|\.)(zohoapis|zoho|zohocloud)\.[a-z.]+$/.test(hostOf(base))) return undefined;
  try {
    const url = new URL(accountsServer);
    if (url.protocol !== "https:" || !/^accounts\.zoho(cloud)?\.[a-z.]+$/.test(url.hostname))
      return undefined;
    return `${url.origin}/oauth/v2/token`;
  } catch {
    return undefined;
  }
}

export async function exchangeCode(
  app: OAuthApp,
  request: { code: string; redirectUri: string; codeVerifier?: string; tokenUrl?: string },
  options: { http?: AxiosInstance; now?: () => number } = {},
): Promise<CrmTokens> {
  const form: Record<string, string> = {
    grant_type: "authorization_code",
    code: request.code,
    redirect_uri: request.redirectUri,
  };
  if (request.codeVerifier) form.code_verifier = request.codeVerifier;
  const { data, at } = await tokenRequest(
    app,
    form,
    "exchange the authorization code",
    [request.code, request.codeVerifier ?? ""],
    { ...options, ...(request.tokenUrl ? { tokenUrl: request.tokenUrl } : {}) },
  );
  return toTokens(data, at);
}

/**
 * A new access token from the refresh token. Providers that rotate refresh tokens
 * return a new one (kept); the others keep the old one; the caller saves at once.
 */
export async function refreshTokens(
  app: OAuthApp,
  current: CrmTokens,
  options: { http?: AxiosInstance; now?: () => number } = {},
): Promise<CrmTokens> {
  if (!current.refreshToken) {
    throw new OAuthError(
      "no-refresh-token",
      `the ${PROVIDER_LABEL[app.provider]} connection has no refresh token: Connect it again`,
      400,
    );
  }
  const { data, at } = await tokenRequest(
    app,
    { grant_type: "refresh_token", refresh_token: current.refreshToken },
    "refresh the access token",
    [current.refreshToken, current.accessToken],
    options,
  );
  return toTokens(data, at, current);
}

/** One Connect under way: what the callback needs, remembered only in this process. */
export interface PendingAuthorization {
  connectionId: string;
  provider: ProviderName;
  redirectUri: string;
  codeVerifier?: string;
  /** The editor user who started it. */
  user: string;
  expiresAt: number;
}

export class OAuthStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "OAuthStateError";
  }
}

interface Entry extends PendingAuthorization {
  bindingHash: Buffer;
  used: boolean;
}

const sha256 = (text: string) => createHash("sha256").update(text).digest();

/**
 * The `state` of each Connect, bound to the browser that started it: `start` returns
 * the state (for the consent URL) and a binding nonce (for a cookie); `take` accepts a
 * state once, within the time limit, and only with its binding. States are kept by
 * hash, and used ones until they expire, so a replay is told apart from a typo.
 */
export class AuthorizationRequests {
  private readonly entries = new Map<string, Entry>();

  constructor(
    readonly ttlMs = 10 * 60_000,
    private readonly now: () => number = Date.now,
    private readonly max = 1000,
  ) {}

  start(input: Omit<PendingAuthorization, "expiresAt" | "codeVerifier"> & { pkce: boolean }): {
    state: string;
    binding: string;
    codeChallenge?: string;
    expiresAt: number;
  } {
    this.prune();
    const state = randomBytes(32).toString("base64url");
    const binding = randomBytes(32).toString("base64url");
    const pkce = input.pkce ? createPkce() : undefined;
    const expiresAt = this.now() + this.ttlMs;
    this.entries.set(sha256(state).toString("base64url"), {
      connectionId: input.connectionId,
      provider: input.provider,
      redirectUri: input.redirectUri,
      user: input.user,
      expiresAt,
      ...(pkce ? { codeVerifier: pkce.verifier } : {}),
      bindingHash: sha256(binding),
      used: false,
    });
    return { state, binding, expiresAt, ...(pkce ? { codeChallenge: pkce.challenge } : {}) };
  }

  /** The pending Connect of `state`, consumed; throws OAuthStateError saying why not. */
  take(state: string | undefined, binding: string | undefined): PendingAuthorization {
    if (!state) throw new OAuthStateError("the callback has no state parameter");
    const entry = this.entries.get(sha256(state).toString("base64url"));
    if (!entry)
      throw new OAuthStateError(
        "unknown state: this Connect link was not started here (or the runtime restarted); click Connect again",
      );
    if (entry.used)
      throw new OAuthStateError(
        "this Connect link was already used: each one works once; click Connect again",
      );
    if (this.now() > entry.expiresAt)
      throw new OAuthStateError(
        `this Connect link expired (they last ${Math.round(this.ttlMs / 60_000)} minutes): click Connect again`,
      );
    if (!binding || !timingSafeEqual(sha256(binding), entry.bindingHash))
      throw new OAuthStateError(
        "this Connect was started in another browser, or the browser did not keep its cookie: " +
          "click Connect again in the editor, and open the editor at the same address as the callback URL",
      );
    entry.used = true;
    return {
      connectionId: entry.connectionId,
      provider: entry.provider,
      redirectUri: entry.redirectUri,
      user: entry.user,
      expiresAt: entry.expiresAt,
      ...(entry.codeVerifier ? { codeVerifier: entry.codeVerifier } : {}),
    };
  }

  /** The hash by which a state's binding cookie is named. */
  static cookieName(state: string): string {
    return `tributary_oauth_${sha256(state).toString("hex").slice(0, 16)}`;
  }

  private prune(): void {
    const now = this.now();
    for (const [key, entry] of this.entries) if (now > entry.expiresAt) this.entries.delete(key);
    // A bound on memory: drop the oldest when too many flows are started.
    while (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value!);
  }
}
