/**
 * The HTTP client the axios-based CRM providers share (HubSpot, Pipedrive, Zoho):
 * a per-connection concurrency limit, 429 + Retry-After honoured for the whole
 * connection, jittered exponential backoff for 5xx and network errors (bounded), and
 * on a 401 one token refresh and one retry — never a loop. Every failure becomes a
 * TributaryError carrying the provider's own message, with secrets scrubbed and no
 * query string (Pipedrive and others accept tokens there).
 */
import axios, { type AxiosInstance, type AxiosResponse, type Method } from "axios";
import { scrub, TributaryError } from "../db/errors";
import type { CrmSettings, CrmTokens } from "./provider";

export interface CrmHttpOptions {
  /** "HubSpot", "Pipedrive": names the provider in errors. */
  provider: string;
  baseUrl: string;
  maxConcurrency: number;
  /** Headers that authenticate a call (read each time: tokens change on refresh). */
  authHeaders(): Promise<Record<string, string>> | Record<string, string>;
  /** Gets a new access token after a 401; absent when the token cannot be refreshed. */
  refresh?: () => Promise<void>;
  /** Values that must never appear in an error (tokens, passwords, client secret). */
  secrets(): string[];
  /** Pulls the provider's message out of an error body. */
  errorMessage?(status: number, body: unknown): string | undefined;
  /** A base URL that replaces baseUrl per call (Pipedrive OAuth: the token's api_domain). */
  baseUrlOverride?(): string | undefined;
  /** False when a 429 or 5xx is not worth retrying (e.g. HubSpot's daily limit). */
  retryable?(status: number, body: unknown): boolean;
  /** Attempts per call for 5xx, network errors and 429 together (default 5). */
  maxAttempts?: number;
  /** First backoff step; doubles each attempt, with jitter (default 500 ms). */
  baseDelayMs?: number;
  /** Longest single wait, for backoff and for Retry-After (default 60 s). */
  maxDelayMs?: number;
  /** Per-request timeout (default 60 s). */
  timeoutMs?: number;
  /** How long the provider's rate-limit headers say to hold the next call (ms; 0: none).
   *  Keeps a connection inside its limits before it is answered with a 429. */
  throttleMs?(headers: Record<string, string>): number;
}

export interface CrmRequest {
  method: Method;
  /** Path under baseUrl ("/crm/v3/objects/contacts") or an absolute URL. */
  url: string;
  params?: Record<string, string | number | boolean | undefined>;
  data?: unknown;
  headers?: Record<string, string>;
  /**
   * Whether sending the call twice is harmless. Reads, searches and upserts by key
   * are; a plain create (POST) is not, so after a 5xx or a dropped connection — the
   * provider may have created the record — it is not retried. 429 and a refused
   * connection mean nothing happened, so those are retried either way.
   */
  idempotent?: boolean;
  /** Skip the Authorization headers (token endpoints authenticate in the body). */
  noAuth?: boolean;
}

export interface CrmResponse<T> {
  status: number;
  data: T;
  headers: Record<string, string>;
}

/** Statistics a test or the Test connection button can show. */
export interface CrmHttpStats {
  requests: number;
  retries: number;
  rateLimited: number;
  refreshes: number;
}

const NETWORK_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ETIMEDOUT",
  "ECONNABORTED",
  "EPIPE",
  "EAI_AGAIN",
  "ENOTFOUND",
  "ERR_SOCKET_CONNECTION_TIMEOUT",
]);

/** Connection never made: the provider cannot have acted on the request. */
const NOT_SENT_CODES = new Set(["ECONNREFUSED", "EAI_AGAIN", "ENOTFOUND"]);

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Retry-After as seconds or an HTTP date, in milliseconds; null when absent or unreadable. */
export function retryAfterMs(value: string | undefined, now = Date.now()): number | null {
  if (value === undefined || value === "") return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/** Counting semaphore: at most `max` calls of one connection at the provider at once. */
export class Limiter {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly max: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active += 1;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      // The slot passes straight to the next caller, so `active` never dips below max.
      if (next) next();
      else this.active -= 1;
    }
  }
}

export class CrmHttp {
  readonly stats: CrmHttpStats = { requests: 0, retries: 0, rateLimited: 0, refreshes: 0 };
  private readonly axios: AxiosInstance;
  private readonly limiter: Limiter;
  /** A 429 pauses every call of the connection until then (epoch ms). */
  private pausedUntil = 0;
  /** One refresh at a time: concurrent 401s share it. */
  private refreshing: Promise<void> | null = null;
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;

  constructor(private readonly options: CrmHttpOptions) {
    this.axios = axios.create({
      baseURL: options.baseUrl.replace(/\/+$/, ""),
      timeout: options.timeoutMs ?? 60_000,
      // Every status comes back as a response; this class decides what is an error.
      validateStatus: () => true,
      maxRedirects: 0,
    });
    this.limiter = new Limiter(Math.max(1, options.maxConcurrency));
    this.maxAttempts = Math.max(1, options.maxAttempts ?? 5);
    this.baseDelayMs = options.baseDelayMs ?? 500;
    this.maxDelayMs = options.maxDelayMs ?? 60_000;
  }

  async request<T>(req: CrmRequest): Promise<T> {
    return (await this.send<T>(req)).data;
  }

  async send<T>(req: CrmRequest): Promise<CrmResponse<T>> {
    const idempotent =
      req.idempotent ??
      ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"].includes(req.method.toUpperCase());
    let refreshed = false;
    for (let attempt = 1; ; attempt += 1) {
      await this.waitForPause();
      // Headers first, outside the limiter: getting them may refresh the token, a
      // call of its own that must not wait for the slot this call would hold.
      const auth = req.noAuth ? {} : await this.options.authHeaders();
      let response: AxiosResponse;
      try {
        response = await this.limiter.run(() => this.attempt(req, auth));
      } catch (err) {
        const code = (err as { code?: string }).code ?? "";
        const retryable = NETWORK_CODES.has(code) && (idempotent || NOT_SENT_CODES.has(code));
        if (retryable && attempt < this.maxAttempts) {
          this.stats.retries += 1;
          await sleep(this.backoffMs(attempt));
          continue;
        }
        throw this.networkError(req, err as Error, attempt);
      }
      const { status } = response;
      const hold = this.options.throttleMs?.(flatHeaders(response)) ?? 0;
      if (hold > 0)
        this.pausedUntil = Math.max(this.pausedUntil, Date.now() + Math.min(hold, this.maxDelayMs));
      if (status === 401 && !req.noAuth && this.options.refresh && !refreshed) {
        // One refresh and one retry: a token that fails right after a refresh is
        // not fixed by refreshing again.
        refreshed = true;
        await this.refreshOnce();
        attempt -= 1; // the retry after a refresh does not use up a backoff attempt
        continue;
      }
      const worthRetrying = this.options.retryable?.(status, response.data) ?? true;
      if (status === 429) {
        this.stats.rateLimited += 1;
        if (attempt < this.maxAttempts && worthRetrying) {
          const wait = retryAfterMs(header(response, "retry-after")) ?? this.backoffMs(attempt);
          this.pausedUntil = Math.max(
            this.pausedUntil,
            Date.now() + Math.min(wait, this.maxDelayMs),
          );
          this.stats.retries += 1;
          continue;
        }
      } else if (status >= 500 && idempotent && worthRetrying && attempt < this.maxAttempts) {
        this.stats.retries += 1;
        await sleep(this.backoffMs(attempt));
        continue;
      }
      if (status >= 200 && status < 300) {
        return { status, data: response.data as T, headers: flatHeaders(response) };
      }
      throw this.httpError(req, response, attempt);
    }
  }

  /** Wraps a call that refreshes tokens so concurrent 401s share one refresh. */
  private async refreshOnce(): Promise<void> {
    if (!this.refreshing) {
      this.stats.refreshes += 1;
      this.refreshing = this.options.refresh!().finally(() => {
        this.refreshing = null;
      });
    }
    await this.refreshing;
  }

  private async attempt(req: CrmRequest, auth: Record<string, string>): Promise<AxiosResponse> {
    this.stats.requests += 1;
    const override = this.options.baseUrlOverride?.();
    return this.axios.request({
      ...(override ? { baseURL: override.replace(/\/+$/, "") } : {}),
      method: req.method,
      url: req.url,
      params: req.params,
      data: req.data,
      headers: { Accept: "application/json", ...auth, ...(req.headers ?? {}) },
    });
  }

  private async waitForPause(): Promise<void> {
    const wait = this.pausedUntil - Date.now();
    if (wait > 0) await sleep(wait);
  }

  private backoffMs(attempt: number): number {
    const base = Math.min(this.baseDelayMs * 2 ** (attempt - 1), this.maxDelayMs);
    // Full jitter on half the step, so concurrent callers do not retry in lockstep.
    return base / 2 + Math.random() * (base / 2);
  }

  /** "GET /crm/v3/objects/contacts" — the path only: query strings may hold tokens. */
  private where(req: CrmRequest): string {
    let path = req.url;
    try {
      path = new URL(req.url, "http://x").pathname;
    } catch {
      path = req.url.split("?")[0];
    }
    return `${this.options.provider} ${req.method.toUpperCase()} ${path}`;
  }

  private clean(text: string): string {
    return scrub(text, this.options.secrets());
  }

  private httpError(req: CrmRequest, response: AxiosResponse, attempts: number): TributaryError {
    const { status } = response;
    const detail =
      this.options.errorMessage?.(status, response.data) ?? defaultMessage(response.data) ?? "";
    const tries = attempts > 1 ? ` after ${attempts} attempts` : "";
    const fix =
      status === 401
        ? "authentication failed: check the token or reconnect the connection"
        : status === 403
          ? "permission denied: give the token/app the scope this object needs"
          : status === 404
            ? "not found: check the object name and the base URL"
            : status === 429
              ? "rate limit still exceeded" +
                tries +
                ": lower max concurrency or the batch size, or run later"
              : status >= 500
                ? `the provider is failing${tries}: try again later`
                : "the provider rejected the request";
    const code =
      status === 401
        ? "auth-failed"
        : status === 403
          ? "forbidden"
          : status === 404
            ? "not-found"
            : status === 429
              ? "rate-limited"
              : status >= 500
                ? "unavailable"
                : "rejected";
    const message = `${this.where(req)}: HTTP ${status}, ${fix}${detail ? ` (${detail})` : ""}`;
    const error = new TributaryError(code, this.clean(message));
    (error as TributaryError & { status?: number }).status = status;
    return error;
  }

  private networkError(req: CrmRequest, err: Error, attempts: number): TributaryError {
    const code = (err as { code?: string }).code ?? "";
    const tries = attempts > 1 ? ` after ${attempts} attempts` : "";
    const fix =
      code === "ENOTFOUND" || code === "EAI_AGAIN"
        ? "the host name could not be resolved: check the base URL"
        : code === "ECONNREFUSED"
          ? "the connection was refused: check the base URL"
          : code === "ECONNABORTED" || code === "ETIMEDOUT"
            ? "no answer in time: check the base URL and the network"
            : "the network call failed";
    return new TributaryError(
      "network",
      this.clean(`${this.where(req)}: ${fix}${tries} (${code || err.message})`),
    );
  }
}

/** Where a provider keeps OAuth tokens (structurally the same as ./auth ProviderAuth). */
export interface TokenStore {
  load(): Promise<CrmTokens | undefined>;
  save(tokens: CrmTokens): Promise<void>;
}

/**
 * An OAuth2 access token kept fresh: refreshed a minute before it expires, and on
 * demand after a 401 (CrmHttp calls `refresh` once per failed call). New tokens are
 * saved the moment they arrive, since some providers rotate the refresh token.
 */
export class OAuthSession {
  private tokens: CrmTokens | undefined;
  private refreshing: Promise<void> | null = null;

  constructor(
    private readonly provider: string,
    private readonly store: TokenStore,
    private readonly exchange: (refreshToken: string) => Promise<CrmTokens>,
  ) {}

  async accessToken(): Promise<string> {
    if (!this.tokens) this.tokens = await this.store.load();
    if (!this.tokens?.accessToken) {
      throw new TributaryError(
        "auth-failed",
        `${this.provider}: the connection has no OAuth token yet: open the crm connection and click Connect`,
      );
    }
    if (this.tokens.expiresAt && this.tokens.expiresAt - 60_000 < Date.now()) await this.refresh();
    return this.tokens.accessToken;
  }

  /** One refresh at a time: calls that find the token expired together share it. */
  refresh(): Promise<void> {
    if (!this.refreshing) {
      this.refreshing = this.doRefresh().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  private async doRefresh(): Promise<void> {
    if (!this.tokens) this.tokens = await this.store.load();
    const refreshToken = this.tokens?.refreshToken;
    if (!refreshToken) {
      throw new TributaryError(
        "auth-failed",
        `${this.provider}: the access token expired and there is no refresh token: reconnect the connection`,
      );
    }
    const fresh = await this.exchange(refreshToken);
    // A provider that does not rotate the refresh token omits it: keep the old one.
    this.tokens = { ...this.tokens, ...fresh, refreshToken: fresh.refreshToken || refreshToken };
    await this.store.save(this.tokens);
  }

  /** The API address the provider gave with the tokens (Salesforce instance, Pipedrive api_domain). */
  get instanceUrl(): string | undefined {
    return this.tokens?.instanceUrl;
  }

  /** Current token values, for scrubbing them out of messages. */
  secrets(): string[] {
    return [this.tokens?.accessToken ?? "", this.tokens?.refreshToken ?? ""];
  }
}

/**
 * The session of a provider that takes a fixed token or OAuth2 (HubSpot, Pipedrive):
 * an OAuthSession for oauth2, null for a token (which must be set); any other auth
 * type is a config error naming the choices.
 */
export function tokenOrOAuth(
  provider: string,
  settings: CrmSettings,
  store: TokenStore | undefined,
  exchange: (refreshToken: string) => Promise<CrmTokens>,
  token: { label: string; help: string },
): OAuthSession | null {
  if (settings.authType === "oauth2") {
    if (!store) throw new TributaryError("config", `${provider} OAuth2 needs a token store`);
    return new OAuthSession(provider, store, exchange);
  }
  if (settings.authType !== "token") {
    throw new TributaryError(
      "config",
      `auth type "${settings.authType}" is not available for ${provider}: choose ${token.label} or oauth2`,
    );
  }
  if (!settings.token) throw new TributaryError("config", `token is empty: ${token.help}`);
  return null;
}

function header(response: AxiosResponse, name: string): string | undefined {
  const value = (response.headers as Record<string, unknown>)[name];
  return value === undefined || value === null ? undefined : String(value);
}

function flatHeaders(response: AxiosResponse): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(response.headers as Record<string, unknown>)) {
    if (v !== undefined && v !== null) out[k.toLowerCase()] = String(v);
  }
  return out;
}

/** The message field most JSON APIs use, or a short text body. */
function defaultMessage(body: unknown): string | undefined {
  if (typeof body === "string") return body.slice(0, 300) || undefined;
  if (body && typeof body === "object") {
    const b = body as Record<string, unknown>;
    for (const key of ["message", "error_description", "error", "errorMessage"]) {
      if (typeof b[key] === "string" && b[key]) return (b[key] as string).slice(0, 500);
    }
  }
  return undefined;
}
