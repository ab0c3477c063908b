/**
 * Zoho CRM through axios: OAuth2 refresh-token grant at the data centre's accounts
 * server, module and field discovery, keyset reads on (Modified_Time, id) over the
 * records list API (If-Modified-Since, sort_by=Modified_Time, page_token paging),
 * and upserts with duplicate_check_fields, 100 records a call.
 *
 * The list API sorts by one field only, so records sharing a Modified_Time come in no
 * particular id order: a read pages on until it has seen the whole last tie group,
 * then orders by (Modified_Time, id) itself and hands out the records strictly after
 * the position. Each incremental read starts again from its position rather than
 * holding a page token across batches, because page offsets shift when a record is
 * modified mid-scan and a shifted page would skip a record.
 */
import axios, { type AxiosResponse, type Method } from "axios";
import type { SyncRecord, Value } from "../types";
import { memoryAuth, type ProviderAuth } from "./auth";
import { Limiter, sleep } from "./http";
import type {
  ConnectionCheck,
  CrmField,
  CrmObject,
  CrmPosition,
  CrmProvider,
  CrmSettings,
  CrmTokens,
  ReadRequest,
  UpsertResult,
} from "./provider";

/** Zoho-only settings beyond CrmSettings. */
export interface ZohoOptions {
  /** "v7" (default), "v6", "v5" or "v2.1": versions with page_token paging. */
  apiVersion?: string;
  /** Accounts server for tokens; derived from baseUrl's data centre when not given. */
  accountsUrl?: string;
  /** Retries of a call refused for load (429, 5xx, network). */
  maxRetries?: number;
  /** First backoff delay; doubles per retry, jittered. */
  retryBaseMs?: number;
  /** The longest wait a Retry-After / X-RATELIMIT-RESET may ask for before the call fails instead. */
  maxRetryWaitMs?: number;
  /** Records per list page (Zoho's maximum is 200). */
  pageSize?: number;
  timeoutMs?: number;
}

const DEFAULTS: Required<Omit<ZohoOptions, "accountsUrl">> = {
  apiVersion: "v7",
  maxRetries: 4,
  retryBaseMs: 1_000,
  maxRetryWaitMs: 60_000,
  pageSize: 200,
  timeoutMs: 60_000,
};

/** Zoho's upsert takes at most 100 records a call. */
const UPSERT_SIZE = 100;

/** System-defined duplicate check fields: usable as upsert keys without being marked unique. */
const SYSTEM_UNIQUE: Record<string, string> = {
  Leads: "Email",
  Contacts: "Email",
  Accounts: "Account_Name",
  Deals: "Deal_Name",
  Campaigns: "Campaign_Name",
  Cases: "Subject",
  Solutions: "Solution_Title",
  Products: "Product_Name",
  Vendors: "Vendor_Name",
  Price_Books: "Price_Book_Name",
  Quotes: "Subject",
  Sales_Orders: "Subject",
  Purchase_Orders: "Subject",
  Invoices: "Subject",
};

/** An error from Zoho or about the connection's settings; its message never holds a secret. */
export class ZohoError extends Error {
  readonly code: string;
  readonly status?: number;
  constructor(message: string, code: string, status?: number) {
    super(message);
    this.name = "ZohoError";
    this.code = code;
    this.status = status;
  }
}

interface ZohoInfo {
  more_records?: boolean;
  next_page_token?: string | null;
  page?: number;
}

interface ZohoUpsertItem {
  code?: string;
  status?: string;
  action?: string;
  message?: string;
  duplicate_field?: string | null;
  details?: { id?: string; api_name?: string; expected_data_type?: string; [k: string]: unknown };
}

interface RequestOptions {
  params?: Record<string, string | number>;
  data?: unknown;
  headers?: Record<string, string>;
  /** Return a per-record `data` array even with an error status (upsert answers 207 / 400 so). */
  perRecord?: boolean;
}

const NAME = /^[A-Za-z][A-Za-z0-9_]*$/;

function apiName(name: string, what: string): string {
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new ZohoError(
      `${what} "${String(name)}" is not a Zoho API name: use the API name from Setup > Developer Hub > APIs (e.g. Contacts, Last_Name)`,
      "SETTINGS",
    );
  }
  return name;
}

/**
 * The accounts server of a data centre: www.zohoapis.eu → accounts.zoho.eu,
 * zohoapis.ca → accounts.zohocloud.ca. A base URL that is not a Zoho API domain
 * (a proxy, a test server) serves tokens itself.
 */
export function accountsUrlFor(baseUrl: string): string {
  const url = new URL(baseUrl);
  const m = /(?:^|\.)zohoapis\.(.+)$/.exec(url.hostname);
  if (!m) return url.origin;
  const tld = m[1];
  return tld === "ca" ? "https://accounts.zohocloud.ca" : `https://accounts.zoho.${tld}`;
}

/** Orders Zoho ids, which are 19-digit numbers kept as strings (beyond a double's precision). */
function compareIds(a: string, b: string): number {
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) {
    const x = BigInt(a);
    const y = BigInt(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

function instant(value: string, what: string): number {
  const t = Date.parse(value);
  if (Number.isNaN(t)) {
    throw new ZohoError(
      `${what} "${value}" is not a Zoho date-time such as 2024-05-01T10:00:00+05:30`,
      "SETTINGS",
    );
  }
  return t;
}

/** (modified, id) order; modified compared as instants, since Zoho writes them in the user's offset. */
function comparePosition(a: CrmPosition, b: CrmPosition): number {
  const ma = a.modified === null ? -Infinity : instant(a.modified, "Modified_Time");
  const mb = b.modified === null ? -Infinity : instant(b.modified, "Modified_Time");
  if (ma !== mb) return ma < mb ? -1 : 1;
  return compareIds(a.id ?? "", b.id ?? "");
}

/** If-Modified-Since for a watermark: a second earlier, so records stamped exactly then are included whether Zoho's test is > or >=. */
function ifModifiedSince(modified: string): string {
  const t = instant(modified, "watermark") - 1000;
  return new Date(t).toISOString().replace(/\.\d{3}Z$/, "+00:00");
}

/** Full reads continue from the page after the last one handed out, while the caller asks for exactly that. */
interface FullScan {
  key: string;
  lastId: string | null;
  pageToken: string | null;
  page: number;
  done: boolean;
  buffer: SyncRecord[];
}

export class ZohoProvider implements CrmProvider {
  readonly name = "zoho" as const;
  private readonly options: Required<Omit<ZohoOptions, "accountsUrl">>;
  private readonly apiBase: string;
  private readonly accountsOverride: string | undefined;
  private readonly gate: Limiter;
  private tokens: CrmTokens | undefined;
  private loaded = false;
  private generation = 0;
  private renewing: Promise<void> | null = null;
  private fullScan: FullScan | null = null;

  constructor(
    private readonly settings: CrmSettings,
    private readonly auth: ProviderAuth,
    options: ZohoOptions = {},
  ) {
    const defined = Object.fromEntries(
      Object.entries(options).filter(([, v]) => v !== undefined),
    ) as ZohoOptions;
    this.options = { ...DEFAULTS, ...defined } as Required<Omit<ZohoOptions, "accountsUrl">>;
    if (settings.authType !== "oauth2") {
      throw new ZohoError(
        `Zoho CRM has no "${settings.authType}" login: choose oauth2 (Connect, or a Self Client's refresh token in the token field)`,
        "SETTINGS",
      );
    }
    if (!settings.clientId)
      throw new ZohoError(
        "Zoho oauth2 login needs clientId: enter the API console client's Client ID",
        "SETTINGS",
      );
    if (!settings.clientSecret) {
      throw new ZohoError(
        "Zoho oauth2 login needs clientSecret: enter the API console client's Client Secret",
        "SETTINGS",
      );
    }
    let base: URL;
    try {
      base = new URL(settings.baseUrl || "https://www.zohoapis.com");
    } catch {
      throw new ZohoError(
        `baseUrl "${settings.baseUrl}" is not a URL: use your data centre's API domain, e.g. https://www.zohoapis.eu`,
        "SETTINGS",
      );
    }
    this.apiBase = base.origin;
    this.accountsOverride = options.accountsUrl?.replace(/\/+$/, "");
    this.gate = new Limiter(Math.max(1, settings.maxConcurrency || 4));
  }

  idField(): string {
    return "id";
  }

  modifiedField(): string {
    return "Modified_Time";
  }

  async check(): Promise<ConnectionCheck> {
    const users = await this.request<{ users?: { full_name?: string; email?: string }[] }>(
      "GET",
      "/users",
      {
        params: { type: "CurrentUser" },
      },
    );
    const org = await this.request<{
      org?: { company_name?: string; id?: string; domain_name?: string }[];
    }>("GET", "/org");
    const me = users?.users?.[0];
    const o = org?.org?.[0];
    return {
      user: me?.email || me?.full_name || "unknown user",
      org: o
        ? `${o.company_name ?? o.domain_name ?? "organization"}${o.id ? ` (${o.id})` : ""}`
        : "unknown organization",
    };
  }

  async listObjects(): Promise<CrmObject[]> {
    const res = await this.request<{
      modules?: {
        api_name: string;
        plural_label?: string;
        module_name?: string;
        api_supported?: boolean;
      }[];
    }>("GET", "/settings/modules");
    return (res?.modules ?? [])
      .filter((m) => m.api_supported !== false)
      .map((m) => ({ name: m.api_name, label: m.plural_label || m.module_name || m.api_name }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  async describe(object: string): Promise<CrmField[]> {
    const module = apiName(object, "module");
    const res = await this.request<{
      fields?: {
        api_name: string;
        field_label?: string;
        display_label?: string;
        data_type?: string;
        unique?: unknown;
      }[];
    }>("GET", "/settings/fields", { params: { module } });
    return (res?.fields ?? []).map((f) => ({
      name: f.api_name,
      label: f.display_label || f.field_label || f.api_name,
      type: f.data_type ?? "text",
      // "Do not allow duplicate values" fields and the module's system duplicate check field key an upsert.
      unique:
        (!!f.unique && typeof f.unique === "object") ||
        f.unique === true ||
        SYSTEM_UNIQUE[module] === f.api_name,
    }));
  }

  async read(request: ReadRequest): Promise<SyncRecord[]> {
    const module = apiName(request.object, "module");
    if (!Number.isInteger(request.limit) || request.limit < 1) {
      throw new ZohoError(
        `batch size ${String(request.limit)} must be a whole number of at least 1`,
        "SETTINGS",
      );
    }
    const fields = ["id", "Modified_Time"];
    for (const f of request.fields) {
      apiName(f, "field");
      if (!fields.includes(f)) fields.push(f);
    }
    return request.mode === "incremental"
      ? this.readIncremental(module, fields, request.after, request.limit)
      : this.readFull(module, fields, request.after, request.limit);
  }

  private async listPage(
    module: string,
    fields: string[],
    sortBy: "Modified_Time" | "id",
    pageToken: string | null,
    page: number,
    since: string | null,
  ): Promise<{ records: SyncRecord[]; more: boolean; next: string | null }> {
    const params: Record<string, string | number> = {
      fields: fields.join(","),
      sort_by: sortBy,
      sort_order: "asc",
      per_page: Math.min(200, this.options.pageSize),
    };
    if (pageToken) params.page_token = pageToken;
    else params.page = page;
    const headers: Record<string, string> = {};
    if (since) headers["If-Modified-Since"] = since;
    const res = await this.request<{ data?: Record<string, unknown>[]; info?: ZohoInfo }>(
      "GET",
      `/${module}`,
      { params, headers },
    );
    // 204 (no body) when nothing matches; 304 when nothing changed since If-Modified-Since.
    const data = res?.data ?? [];
    return {
      records: data.map((r) => toSyncRecord(r, fields)),
      more: res?.info?.more_records === true && data.length > 0,
      next: res?.info?.next_page_token ?? null,
    };
  }

  private async readIncremental(
    module: string,
    fields: string[],
    after: CrmPosition | null,
    limit: number,
  ): Promise<SyncRecord[]> {
    const since = after?.modified ? ifModifiedSince(after.modified) : null;
    const buffer: SyncRecord[] = [];
    let pageToken: string | null = null;
    let page = 1;
    const pos = (r: SyncRecord): CrmPosition => ({
      modified: String(r.Modified_Time),
      id: String(r.id),
    });
    for (;;) {
      const res = await this.listPage(module, fields, "Modified_Time", pageToken, page, since);
      for (const r of res.records) {
        if (r.Modified_Time === null || r.id === null) continue;
        if (!after || comparePosition(pos(r), after) > 0) buffer.push(r);
      }
      if (!res.more) break;
      if (buffer.length >= limit && res.records.length) {
        buffer.sort((a, b) => comparePosition(pos(a), pos(b)));
        const cut = instant(String(buffer[limit - 1].Modified_Time), "Modified_Time");
        const lastSeen = instant(
          String(res.records[res.records.length - 1].Modified_Time),
          "Modified_Time",
        );
        // Pages come by Modified_Time: past the cut's time, every record tied with it has been seen.
        if (lastSeen > cut) break;
      }
      pageToken = res.next;
      page++;
    }
    buffer.sort((a, b) => comparePosition(pos(a), pos(b)));
    return buffer.slice(0, limit);
  }

  private async readFull(
    module: string,
    fields: string[],
    after: CrmPosition | null,
    limit: number,
  ): Promise<SyncRecord[]> {
    const key = JSON.stringify([module, fields]);
    let scan = this.fullScan;
    if (!scan || scan.key !== key || scan.lastId !== (after?.id ?? null)) {
      scan = { key, lastId: after?.id ?? null, pageToken: null, page: 1, done: false, buffer: [] };
      this.fullScan = scan;
    }
    while (scan.buffer.length < limit && !scan.done) {
      const res = await this.listPage(module, fields, "id", scan.pageToken, scan.page, null);
      const floor = scan.lastId;
      for (const r of res.records)
        if (floor === null || compareIds(String(r.id), floor) > 0) scan.buffer.push(r);
      scan.buffer.sort((a, b) => compareIds(String(a.id), String(b.id)));
      scan.done = !res.more;
      scan.pageToken = res.next;
      scan.page++;
    }
    const out = scan.buffer.splice(0, limit);
    if (out.length) scan.lastId = String(out[out.length - 1].id);
    return out;
  }

  async upsert(object: string, keyField: string, records: SyncRecord[]): Promise<UpsertResult[]> {
    const module = apiName(object, "module");
    const key = apiName(keyField, "key field");
    const results: UpsertResult[] = [];
    for (let i = 0; i < records.length; i += UPSERT_SIZE) {
      const chunk = records.slice(i, i + UPSERT_SIZE);
      const body: Record<string, unknown> = { data: chunk.map(toZohoValues) };
      // Upserting by id updates that record; any other key is a duplicate check field.
      if (key !== "id") body.duplicate_check_fields = [key];
      const res = await this.request<{ data?: ZohoUpsertItem[] }>("POST", `/${module}/upsert`, {
        data: body,
        perRecord: true,
      });
      const items = res?.data ?? [];
      chunk.forEach((r, j) => {
        const item = items[j];
        const k = [r[key] ?? null];
        if (!item)
          results.push({
            key: k,
            action: "failed",
            error: "Zoho returned no result for this record",
          });
        else if (item.status === "success")
          results.push({ key: k, action: item.action === "update" ? "update" : "insert" });
        else {
          const field = item.details?.api_name ? ` (${item.details.api_name})` : "";
          results.push({
            key: k,
            action: "failed",
            error: this.scrub(`${item.code ?? "ERROR"}: ${item.message ?? "failed"}${field}`),
          });
        }
      });
    }
    return results;
  }

  async revoke(): Promise<void> {
    if (!this.tokens) this.tokens = await this.auth.load();
    const token = this.tokens?.refreshToken || this.settings.token;
    if (!token) return;
    try {
      // https://www.zoho.com/crm/developer/docs/api/v7/revoke-tokens.html
      const res = await axios.post(
        `${this.accountsUrl}/oauth/v2/token/revoke`,
        new URLSearchParams({ token }).toString(),
        {
          headers: { "content-type": "application/x-www-form-urlencoded" },
          timeout: this.options.timeoutMs,
          validateStatus: () => true,
        },
      );
      const body = res.data as { error?: string; status?: string } | undefined;
      if (res.status >= 400 || body?.error || body?.status === "error") {
        throw new ZohoError(
          `Zoho revoke: ${body?.error ?? `HTTP ${res.status}`}`,
          body?.error ?? `HTTP_${res.status}`,
          res.status,
        );
      }
    } catch (err) {
      throw this.clean(err, "revoke");
    } finally {
      this.tokens = undefined;
      this.generation++;
    }
  }

  // ---- tokens ---------------------------------------------------------------

  /**
   * The accounts server that issued the tokens: the data centre of the API domain the
   * token response named (a user in the EU connected through a .com base URL), else
   * of baseUrl.
   */
  private get accountsUrl(): string {
    return this.accountsOverride || accountsUrlFor(this.tokens?.instanceUrl || this.apiBase);
  }

  private async accessToken(): Promise<string> {
    if (!this.loaded) {
      this.tokens = await this.auth.load();
      this.loaded = true;
    }
    const t = this.tokens;
    // Refreshed a minute before expiry, so a long page fetch does not run out mid-call.
    if (t?.accessToken && (!t.expiresAt || t.expiresAt - 60_000 > Date.now())) return t.accessToken;
    await this.renew();
    return this.tokens!.accessToken;
  }

  private renew(): Promise<void> {
    if (!this.renewing) {
      this.renewing = this.refresh().finally(() => {
        this.renewing = null;
      });
    }
    return this.renewing;
  }

  private async refresh(): Promise<void> {
    const s = this.settings;
    const refreshToken = this.tokens?.refreshToken || s.token;
    if (!refreshToken) {
      throw new ZohoError(
        "Zoho connection has no refresh token: press Connect in the crm-connection, or paste a Self Client's refresh token",
        "NO_TOKEN",
      );
    }
    let res: AxiosResponse;
    try {
      // https://www.zoho.com/crm/developer/docs/api/v7/refresh.html — parameters as a form body keep them out of URLs and logs.
      res = await axios.post(
        `${this.accountsUrl}/oauth/v2/token`,
        new URLSearchParams({
          grant_type: "refresh_token",
          client_id: s.clientId,
          client_secret: s.clientSecret,
          refresh_token: refreshToken,
        }).toString(),
        {
          headers: { "content-type": "application/x-www-form-urlencoded" },
          timeout: this.options.timeoutMs,
          validateStatus: () => true,
        },
      );
    } catch (err) {
      throw this.clean(err, "token refresh");
    }
    const body = (res.data ?? {}) as {
      access_token?: string;
      refresh_token?: string;
      api_domain?: string;
      expires_in?: number;
      error?: string;
    };
    if (res.status >= 400 || body.error || !body.access_token) {
      const reason = body.error ?? `HTTP ${res.status}`;
      const hint =
        reason === "invalid_code"
          ? " (the refresh token was revoked or has expired: press Connect again)"
          : reason === "invalid_client"
            ? " (check clientId / clientSecret and that accountsUrl is your data centre's)"
            : "";
      throw new ZohoError(`Zoho token refresh: ${reason}${hint}`, reason, res.status);
    }
    const tokens: CrmTokens = {
      accessToken: body.access_token,
      // Zoho keeps the refresh token; one sent back replaces the old at once.
      refreshToken: body.refresh_token || refreshToken,
      expiresAt: Date.now() + (body.expires_in ?? 3600) * 1000,
      instanceUrl: body.api_domain || this.tokens?.instanceUrl,
    };
    this.tokens = tokens;
    this.generation++;
    await this.auth.save(tokens);
  }

  // ---- requests -------------------------------------------------------------

  /**
   * One call to the CRM API: a 401 refreshes the token once and resends once; 429,
   * 5xx and network errors back off (Retry-After or X-RATELIMIT-RESET when given,
   * jittered exponential otherwise), at most maxRetries times.
   */
  private request<T>(
    method: Method,
    path: string,
    opts: RequestOptions = {},
  ): Promise<T | undefined> {
    return this.gate.run(async () => {
      let refreshed = false;
      for (let attempt = 0; ; attempt++) {
        const token = await this.accessToken();
        const generation = this.generation;
        const base = (this.tokens?.instanceUrl || this.apiBase).replace(/\/+$/, "");
        let res: AxiosResponse;
        try {
          res = await axios.request({
            method,
            url: `${base}/crm/${this.options.apiVersion}${path}`,
            params: opts.params,
            data: opts.data,
            headers: { Authorization: `Zoho-oauthtoken ${token}`, ...(opts.headers ?? {}) },
            timeout: this.options.timeoutMs,
            validateStatus: () => true,
          });
        } catch (err) {
          // Network failure: axios errors carry the request config (and the token), so only the code leaves.
          const code = (err as { code?: string }).code ?? "NETWORK";
          if (attempt < this.options.maxRetries) {
            await sleep(this.backoff(attempt));
            continue;
          }
          throw new ZohoError(
            `Zoho ${method} ${path}: network error ${code} after ${attempt + 1} attempts`,
            code,
          );
        }
        const body = res.data as
          | { code?: string; message?: string; data?: unknown; details?: { api_name?: string } }
          | ""
          | undefined;
        if (res.status === 204 || res.status === 304) return undefined;
        if (res.status === 401) {
          if (refreshed) {
            throw new ZohoError(
              `Zoho ${method} ${path}: the token was refreshed but Zoho still refuses it (${this.describe401(body)}); check the client's scopes and that the grant was not revoked`,
              typeof body === "object" && body?.code ? body.code : "INVALID_TOKEN",
              401,
            );
          }
          refreshed = true;
          if (generation === this.generation) {
            if (this.tokens) this.tokens = { ...this.tokens, accessToken: "" };
            await this.renew();
          }
          continue;
        }
        if (res.status === 429 || res.status >= 500) {
          const wait = res.status === 429 ? this.retryAfter(res) : null;
          if (
            attempt < this.options.maxRetries &&
            (wait === null || wait <= this.options.maxRetryWaitMs)
          ) {
            await sleep(wait ?? this.backoff(attempt));
            continue;
          }
          const code = typeof body === "object" && body?.code ? body.code : `HTTP_${res.status}`;
          const extra =
            wait !== null && wait > this.options.maxRetryWaitMs
              ? ` (Zoho asks to wait ${Math.ceil(wait / 1000)} s)`
              : "";
          throw new ZohoError(
            `Zoho ${method} ${path}: ${code}${typeof body === "object" && body?.message ? `: ${this.scrub(body.message)}` : ""}${extra} after ${attempt + 1} attempts`,
            code,
            res.status,
          );
        }
        if (res.status >= 400) {
          if (opts.perRecord && typeof body === "object" && Array.isArray(body?.data))
            return body as T;
          const code = typeof body === "object" && body?.code ? body.code : `HTTP_${res.status}`;
          const field =
            typeof body === "object" && body?.details?.api_name
              ? ` (${body.details.api_name})`
              : "";
          const message =
            typeof body === "object" && body?.message
              ? body.message
              : typeof body === "string"
                ? body.slice(0, 200)
                : "";
          throw new ZohoError(
            `Zoho ${method} ${path}: ${code}: ${this.scrub(message)}${field}`,
            code,
            res.status,
          );
        }
        return (body === "" ? undefined : body) as T | undefined;
      }
    });
  }

  private describe401(body: unknown): string {
    if (body && typeof body === "object") {
      const b = body as { code?: string; message?: string };
      return this.scrub(`${b.code ?? "INVALID_TOKEN"}: ${b.message ?? "invalid oauth token"}`);
    }
    return "INVALID_TOKEN";
  }

  /** Milliseconds Zoho asks to wait: Retry-After (seconds or date), else X-RATELIMIT-RESET (epoch ms or s). */
  private retryAfter(res: AxiosResponse): number | null {
    const h = res.headers as Record<string, string | undefined>;
    const ra = h["retry-after"];
    if (ra !== undefined) {
      const s = Number(ra);
      if (Number.isFinite(s)) return Math.max(0, s * 1000);
      const d = Date.parse(ra);
      if (!Number.isNaN(d)) return Math.max(0, d - Date.now());
    }
    const reset = Number(h["x-ratelimit-reset"]);
    if (Number.isFinite(reset) && reset > 0) {
      const ms = reset > 1e12 ? reset : reset * 1000;
      return Math.max(0, ms - Date.now());
    }
    return null;
  }

  private backoff(attempt: number): number {
    const base = Math.min(30_000, this.options.retryBaseMs * 2 ** attempt);
    return base / 2 + Math.random() * (base / 2);
  }

  private clean(err: unknown, what: string): ZohoError {
    if (err instanceof ZohoError) return err;
    const code = (err as { code?: string }).code ?? "ERROR";
    return new ZohoError(`Zoho ${what}: ${code}`, code);
  }

  private scrub(text: string): string {
    const secrets = [
      this.settings.clientSecret,
      this.settings.token,
      this.tokens?.accessToken,
      this.tokens?.refreshToken,
    ]
      .filter((x): x is string => typeof x === "string" && x.length >= 4)
      .sort((a, b) => b.length - a.length);
    let out = text;
    for (const s of secrets) out = out.split(s).join("[redacted]");
    return out;
  }
}

function toSyncRecord(raw: Record<string, unknown>, fields: string[]): SyncRecord {
  const out: SyncRecord = {};
  for (const f of fields) out[f] = toValue(raw[f]);
  return out;
}

function toValue(v: unknown): Value {
  if (v === undefined || v === null) return null;
  if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") return v;
  if (Array.isArray(v)) return v.map(toValue);
  if (typeof v === "object") {
    const out: { [key: string]: Value } = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = toValue(x);
    return out;
  }
  return String(v);
}

function toZohoValues(record: SyncRecord): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(record)) {
    apiName(k, "field");
    out[k] = Buffer.isBuffer(v) ? v.toString("base64") : v;
  }
  return out;
}

/** The provider index.ts wires for provider "zoho". */
export function createZoho(
  settings: CrmSettings,
  auth?: ProviderAuth,
  options?: ZohoOptions,
): ZohoProvider {
  // Without a store the tokens live in memory only (settings.token is the refresh token).
  return new ZohoProvider(settings, auth ?? memoryAuth(), options);
}
