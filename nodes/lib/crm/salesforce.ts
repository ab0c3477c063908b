/**
 * Salesforce through jsforce 3: session logins (password, OAuth2 refresh token,
 * JWT bearer), discovery, keyset reads on (SystemModstamp, Id), upserts by external
 * ID through sObject Collections, and Bulk API 2.0 above configurable thresholds.
 *
 * Sessions are renewed here rather than by jsforce's SessionRefreshDelegate: that
 * delegate refreshes and re-sends for as long as Salesforce answers 401, so a token
 * that is rejected right after its refresh (revoked app, IP restriction) loops for
 * ever. Here a rejected call renews the session once and is sent once more; a second
 * rejection surfaces.
 */
import { createSign } from "node:crypto";
import { Connection, OAuth2 } from "jsforce";
import { HttpApi } from "jsforce/lib/http-api";
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

/** Salesforce-only settings beyond CrmSettings (the crm-connection's advanced fields). */
export interface SalesforceOptions {
  /** REST API version, e.g. "62.0". */
  apiVersion?: string;
  /** Full reads of objects with more records than this use a Bulk API 2.0 query job; 0 turns Bulk reads off. */
  bulkQueryThreshold?: number;
  /** Upserts of more records than this in one call use a Bulk API 2.0 ingest job; 0 turns Bulk writes off. */
  bulkIngestThreshold?: number;
  bulkPollIntervalMs?: number;
  bulkPollTimeoutMs?: number;
  /** Retries of a call refused for load (REQUEST_LIMIT_EXCEEDED, 429, 5xx, network). */
  maxRetries?: number;
  /** First backoff delay; doubles per retry, jittered, capped at 30 s. */
  retryBaseMs?: number;
}

const DEFAULTS: Required<SalesforceOptions> = {
  apiVersion: "62.0",
  bulkQueryThreshold: 50_000,
  bulkIngestThreshold: 2_000,
  bulkPollIntervalMs: 2_000,
  bulkPollTimeoutMs: 15 * 60_000,
  maxRetries: 4,
  retryBaseMs: 1_000,
};

/** sObject Collections take at most 200 records a call. */
const COLLECTION_SIZE = 200;

/** An error from Salesforce or about the connection's settings; its message never holds a secret. */
export class SalesforceError extends Error {
  /** Salesforce errorCode (INVALID_SESSION_ID, REQUEST_LIMIT_EXCEEDED, ...) or ours (SETTINGS, ...). */
  readonly code: string;
  constructor(message: string, code: string) {
    super(message);
    this.name = "SalesforceError";
    this.code = code;
  }
}

interface TokenResponse {
  access_token: string;
  refresh_token?: string;
  instance_url: string;
  id?: string;
}

interface QueryPage {
  totalSize: number;
  done: boolean;
  nextRecordsUrl?: string;
  records: Record<string, unknown>[];
}

interface UpsertItem {
  id?: string;
  success: boolean;
  created?: boolean;
  errors?: { statusCode?: string; message?: string; fields?: string[] }[];
}

interface BulkJob {
  id: string;
  state: string;
  errorMessage?: string;
  numberRecordsProcessed?: number;
}

/** Where a Bulk full read continues: the job, its next result locator, and the last id handed out. */
interface BulkCursor {
  key: string;
  jobId: string;
  locator: string | null;
  lastId: string | null;
}

const IDENT = /^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$/;
const RECORD_ID = /^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$/;
const DATETIME = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})$/;

/** Checks an object or field API name before it goes into SOQL or a URL. */
export function soqlName(name: string, what: string): string {
  if (typeof name !== "string" || !IDENT.test(name)) {
    throw new SalesforceError(
      `${what} "${String(name)}" is not a Salesforce API name: use letters, digits and underscores (e.g. Contact, External_Id__c)`,
      "SETTINGS",
    );
  }
  return name;
}

/**
 * A SOQL dateTime literal for a stored watermark. The watermark is kept as Salesforce
 * returned it ("2024-05-01T10:00:00.000+0000"); it is rewritten textually (no Date, no
 * rounding) into the literal form SOQL accepts, and anything else is refused, so a
 * watermark edited through the API cannot inject SOQL.
 */
export function soqlDateTime(value: string): string {
  const m = DATETIME.exec(value);
  if (!m) {
    throw new SalesforceError(
      `watermark "${value}" is not a Salesforce dateTime such as 2024-05-01T10:00:00.000+0000; reset the source's watermark`,
      "SETTINGS",
    );
  }
  const [, date, time, fraction = "", zone] = m;
  const offset =
    zone === "Z" ? "Z" : zone.length === 5 ? `${zone.slice(0, 3)}:${zone.slice(3)}` : zone;
  return `${date}T${time}${fraction}${offset}`;
}

/** A quoted SOQL record id (ids are checked, so nothing needs escaping). */
export function soqlId(value: string): string {
  if (!RECORD_ID.test(value)) {
    throw new SalesforceError(
      `position id "${value}" is not a Salesforce record id (15 or 18 letters and digits); reset the source's watermark`,
      "SETTINGS",
    );
  }
  return `'${value}'`;
}

/** The SOQL of one keyset page (exported for tests of the query text). */
export function buildReadSoql(
  object: string,
  fields: string[],
  mode: "full" | "incremental",
  after: CrmPosition | null,
  limit: number,
): string {
  const obj = soqlName(object, "object");
  const wanted = selectList(fields, mode);
  const where: string[] = [];
  if (mode === "incremental") {
    if (after?.modified) {
      const m = soqlDateTime(after.modified);
      where.push(
        after.id
          ? `SystemModstamp > ${m} OR (SystemModstamp = ${m} AND Id > ${soqlId(after.id)})`
          : `SystemModstamp > ${m}`,
      );
    }
    return `SELECT ${wanted.join(", ")} FROM ${obj}${where.length ? ` WHERE ${where[0]}` : ""} ORDER BY SystemModstamp, Id LIMIT ${limitOf(limit)}`;
  }
  if (after?.id) where.push(`Id > ${soqlId(after.id)}`);
  return `SELECT ${wanted.join(", ")} FROM ${obj}${where.length ? ` WHERE ${where[0]}` : ""} ORDER BY Id LIMIT ${limitOf(limit)}`;
}

function selectList(fields: string[], mode: "full" | "incremental"): string[] {
  const wanted = ["Id", "SystemModstamp"];
  for (const f of fields) {
    soqlName(f, "field");
    if (!wanted.some((w) => w.toLowerCase() === f.toLowerCase())) wanted.push(f);
  }
  void mode;
  return wanted;
}

function limitOf(limit: number): number {
  if (!Number.isInteger(limit) || limit < 1) {
    throw new SalesforceError(
      `batch size ${String(limit)} must be a whole number of at least 1`,
      "SETTINGS",
    );
  }
  return limit;
}

function errorCode(err: unknown): string {
  if (err && typeof err === "object") {
    const e = err as { errorCode?: unknown; name?: unknown; code?: unknown };
    if (typeof e.errorCode === "string") return e.errorCode;
    if (typeof e.code === "string") return e.code;
    if (typeof e.name === "string") return e.name;
  }
  return "ERROR";
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const TRANSIENT_NETWORK = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ETIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "ENOTFOUND",
]);

export class SalesforceProvider implements CrmProvider {
  readonly name = "salesforce" as const;
  private readonly options: Required<SalesforceOptions>;
  private readonly loginUrl: string;
  private readonly gate: Limiter;
  private conn: Connection | null = null;
  private tokens: CrmTokens | undefined;
  /** Bumped on each new session, so calls that failed on an old one retry without renewing again. */
  private generation = 0;
  private renewing: Promise<void> | null = null;
  private bulkCursor: BulkCursor | null = null;
  private readonly typeCache = new Map<string, Map<string, string>>();

  constructor(
    private readonly settings: CrmSettings,
    private readonly auth: ProviderAuth,
    options: SalesforceOptions = {},
  ) {
    this.options = { ...DEFAULTS, ...definedOnly(options) };
    this.loginUrl = (settings.baseUrl || "https://login.salesforce.com").replace(/\/+$/, "");
    this.gate = new Limiter(Math.max(1, settings.maxConcurrency || 4));
    this.validateSettings();
  }

  idField(): string {
    return "Id";
  }

  modifiedField(): string {
    return "SystemModstamp";
  }

  async check(): Promise<ConnectionCheck> {
    const identity = await this.call("identity", (conn) => conn.identity());
    const limits = await this.call("limits", (conn) => conn.limits());
    let org = identity.organization_id;
    try {
      const res = await this.soql("organization", "SELECT Name FROM Organization LIMIT 1");
      const name = res.records[0]?.Name;
      if (typeof name === "string" && name) org = `${name} (${identity.organization_id})`;
    } catch {
      // A user without "View Setup" may not read Organization; the id still identifies it.
    }
    const daily = limits.DailyApiRequests;
    return {
      user: identity.username,
      org,
      limits: daily
        ? `DailyApiRequests ${daily.Remaining.toLocaleString("en-US")} of ${daily.Max.toLocaleString("en-US")} left`
        : undefined,
    };
  }

  async listObjects(): Promise<CrmObject[]> {
    const res = await this.call("describeGlobal", (conn) => conn.describeGlobal());
    return res.sobjects
      .filter((o) => o.queryable)
      .map((o) => ({ name: o.name, label: o.label }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  async describe(object: string): Promise<CrmField[]> {
    const name = soqlName(object, "object");
    const res = await this.call(`describe ${name}`, (conn) => conn.sobject(name).describe());
    return res.fields.map((f) => ({
      name: f.name,
      label: f.label,
      type: f.type,
      // Only external-ID fields can key an upsert through sObject Collections.
      unique: f.externalId === true,
    }));
  }

  async read(request: ReadRequest): Promise<SyncRecord[]> {
    const fields = selectList(request.fields, request.mode);
    if (request.mode === "full" && this.options.bulkQueryThreshold > 0) {
      const bulk = await this.readBulk(request, fields);
      if (bulk) return bulk;
    }
    const soql = buildReadSoql(
      request.object,
      request.fields,
      request.mode,
      request.after,
      request.limit,
    );
    const out: SyncRecord[] = [];
    let p = await this.soql(`query ${request.object}`, soql);
    for (;;) {
      for (const r of p.records) out.push(toSyncRecord(r, fields));
      // LIMIT n above the query batch size (2,000) arrives in several pages.
      if (p.done || !p.nextRecordsUrl || out.length >= request.limit) break;
      const next = p.nextRecordsUrl;
      p = await this.call(
        `query ${request.object}`,
        async (conn) => (await conn.queryMore(next)) as unknown as QueryPage,
      );
    }
    return out.slice(0, request.limit);
  }

  async upsert(object: string, keyField: string, records: SyncRecord[]): Promise<UpsertResult[]> {
    const obj = soqlName(object, "object");
    const key = soqlName(keyField, "key field");
    if (key.toLowerCase() === "id") {
      throw new SalesforceError(
        `upsert of ${obj} by Id is not possible: sObject Collections upsert by an external ID field; choose a field marked External ID as the key`,
        "SETTINGS",
      );
    }
    if (this.options.bulkIngestThreshold > 0 && records.length > this.options.bulkIngestThreshold) {
      return this.upsertBulk(obj, key, records);
    }
    const results: UpsertResult[] = [];
    for (let i = 0; i < records.length; i += COLLECTION_SIZE) {
      const chunk = records.slice(i, i + COLLECTION_SIZE);
      const body = {
        allOrNone: false,
        records: chunk.map((r) => ({ attributes: { type: obj }, ...toSalesforceValues(r) })),
      };
      const items = await this.call(`upsert ${obj}`, (conn) =>
        conn.request<UpsertItem[]>({
          method: "PATCH",
          url: `/composite/sobjects/${obj}/${key}`,
          body: JSON.stringify(body),
          headers: { "content-type": "application/json" },
        }),
      );
      chunk.forEach((r, j) => {
        const item = items[j];
        const k = [r[key] ?? null];
        if (!item)
          results.push({
            key: k,
            action: "failed",
            error: "Salesforce returned no result for this record",
          });
        else if (item.success) results.push({ key: k, action: item.created ? "insert" : "update" });
        else results.push({ key: k, action: "failed", error: describeErrors(item.errors) });
      });
    }
    return results;
  }

  async revoke(): Promise<void> {
    const tokens = this.tokens ?? (await this.auth.load());
    const token = tokens?.refreshToken || tokens?.accessToken || this.conn?.accessToken;
    if (!token) return;
    const oauth2 = new OAuth2({ loginUrl: this.loginUrl });
    try {
      await oauth2.revokeToken(token);
    } catch (err) {
      throw this.clean(err, "revoke");
    } finally {
      this.conn = null;
      this.tokens = undefined;
      this.generation++;
    }
  }

  /** The first page of a query (jsforce's Query resolves to it without fetching more). */
  private soql(what: string, soql: string): Promise<QueryPage> {
    return this.call(
      what,
      async (conn) => (await conn.query(soql, { autoFetch: false })) as unknown as QueryPage,
    );
  }

  // ---- sessions -------------------------------------------------------------

  private validateSettings(): void {
    const s = this.settings;
    const missing = (field: string, fix: string) =>
      new SalesforceError(`Salesforce ${s.authType} login needs ${field}: ${fix}`, "SETTINGS");
    if (s.authType === "password") {
      if (!s.username) throw missing("username", "enter the Salesforce user's login name");
      if (!s.password)
        throw missing(
          "password",
          "enter the user's password (the security token goes in its own field)",
        );
    } else if (s.authType === "jwt") {
      if (!s.clientId) throw missing("clientId", "enter the connected app's consumer key");
      if (!s.username) throw missing("username", "enter the Salesforce user the app acts as");
      if (!s.privateKey)
        throw missing(
          "privateKey",
          "paste the PEM private key whose certificate is uploaded to the connected app",
        );
    } else if (s.authType === "oauth2") {
      if (!s.clientId) throw missing("clientId", "enter the connected app's consumer key");
    } else {
      throw new SalesforceError(
        `Salesforce has no "${s.authType}" login: choose oauth2, password or jwt in the connection`,
        "SETTINGS",
      );
    }
  }

  /** The connection, logging in or loading stored tokens the first time. */
  private async session(): Promise<Connection> {
    if (this.conn) return this.conn;
    if (this.renewing) {
      await this.renewing;
      if (this.conn) return this.conn;
    }
    const stored = await this.auth.load();
    if (stored?.accessToken && stored.instanceUrl) {
      this.tokens = stored;
      this.conn = this.connectionFor(stored);
      return this.conn;
    }
    this.tokens = stored;
    await this.renew();
    if (!this.conn) throw new SalesforceError("Salesforce login produced no session", "LOGIN");
    return this.conn;
  }

  private connectionFor(tokens: CrmTokens): Connection {
    // No clientId and no refreshToken here: either would install jsforce's own
    // refresh delegate and its unbounded retry (see the file comment).
    return new Connection({
      loginUrl: this.loginUrl,
      instanceUrl: tokens.instanceUrl,
      accessToken: tokens.accessToken,
      version: this.options.apiVersion,
    });
  }

  /** A new session by the connection's auth mode; one at a time, shared by concurrent callers. */
  private renew(): Promise<void> {
    if (!this.renewing) {
      this.renewing = this.login().finally(() => {
        this.renewing = null;
      });
    }
    return this.renewing;
  }

  private async login(): Promise<void> {
    const s = this.settings;
    let tokens: CrmTokens;
    try {
      if (s.authType === "password") {
        tokens = await this.loginPassword();
      } else if (s.authType === "jwt") {
        tokens = await this.loginJwt();
      } else {
        tokens = await this.refreshOAuth();
      }
    } catch (err) {
      throw this.clean(err, "login");
    }
    this.tokens = tokens;
    this.conn = this.connectionFor(tokens);
    this.generation++;
    // Persist before any further call: a rotated refresh token invalidates the old one.
    await this.auth.save(tokens);
  }

  private async loginPassword(): Promise<CrmTokens> {
    const s = this.settings;
    const conn = new Connection({ loginUrl: this.loginUrl, version: this.options.apiVersion });
    const password = `${s.password}${s.securityToken || ""}`;
    if (s.clientId && s.clientSecret) {
      // OAuth 2.0 username-password flow, through a bare OAuth2 so no refresh delegate is installed.
      const oauth2 = new OAuth2({
        loginUrl: this.loginUrl,
        clientId: s.clientId,
        clientSecret: s.clientSecret,
      });
      const res = (await oauth2.authenticate(s.username, password)) as TokenResponse;
      return { accessToken: res.access_token, instanceUrl: res.instance_url };
    }
    // SOAP login(): called directly, since Connection.login() installs a refresh delegate.
    await conn.loginBySoap(s.username, password);
    if (!conn.accessToken)
      throw new SalesforceError("Salesforce login returned no session id", "LOGIN");
    return { accessToken: conn.accessToken, instanceUrl: conn.instanceUrl };
  }

  private async refreshOAuth(): Promise<CrmTokens> {
    const s = this.settings;
    const refreshToken = this.tokens?.refreshToken || s.token;
    if (!refreshToken) {
      throw new SalesforceError(
        "Salesforce OAuth2 connection has no refresh token: press Connect in the crm-connection to authorize it",
        "NO_TOKEN",
      );
    }
    const oauth2 = new OAuth2({
      loginUrl: this.loginUrl,
      clientId: s.clientId,
      clientSecret: s.clientSecret || undefined,
    });
    const res = (await oauth2.refreshToken(refreshToken)) as TokenResponse;
    return {
      accessToken: res.access_token,
      // Salesforce returns a new refresh token only when the connected app rotates them.
      refreshToken: res.refresh_token || refreshToken,
      instanceUrl: res.instance_url,
    };
  }

  private async loginJwt(): Promise<CrmTokens> {
    const s = this.settings;
    const b64 = (v: string | Buffer) => Buffer.from(v).toString("base64url");
    const now = Math.floor(Date.now() / 1000);
    const header = b64(JSON.stringify({ alg: "RS256", typ: "JWT" }));
    // aud is the login host the token is asked of: login.salesforce.com, test.salesforce.com or a My Domain.
    const claims = b64(
      JSON.stringify({ iss: s.clientId, sub: s.username, aud: this.loginUrl, exp: now + 180 }),
    );
    let signature: string;
    try {
      signature = createSign("RSA-SHA256")
        .update(`${header}.${claims}`)
        .sign(s.privateKey, "base64url");
    } catch {
      throw new SalesforceError(
        "privateKey is not a usable PEM private key: paste the key (-----BEGIN PRIVATE KEY-----) whose certificate is uploaded to the connected app",
        "SETTINGS",
      );
    }
    // A bare OAuth2 (no client id/secret) so that only the assertion is posted.
    const oauth2 = new OAuth2({ loginUrl: this.loginUrl });
    const res = (await oauth2.requestToken({
      grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer",
      assertion: `${header}.${claims}.${signature}`,
    })) as TokenResponse;
    return { accessToken: res.access_token, instanceUrl: res.instance_url };
  }

  /**
   * One API call with the session rules: an INVALID_SESSION_ID renews the session
   * once and resends once; REQUEST_LIMIT_EXCEEDED, 429, 5xx and network errors back
   * off (jittered, bounded). Errors leave scrubbed of every secret.
   */
  private async call<T>(what: string, fn: (conn: Connection) => Promise<T>): Promise<T> {
    return this.gate.run(async () => {
      let renewed = false;
      for (let attempt = 0; ; attempt++) {
        const conn = await this.session();
        const generation = this.generation;
        try {
          return await fn(conn);
        } catch (err) {
          const code = errorCode(err);
          if (code === "INVALID_SESSION_ID") {
            if (renewed) {
              throw new SalesforceError(
                `Salesforce ${what}: the session was renewed but Salesforce still refuses it (${this.scrub(messageOf(err))}); check the user is active, the connected app's policies and that the token was not revoked`,
                code,
              );
            }
            renewed = true;
            // Another call may already have renewed the session this one failed on.
            if (generation === this.generation) {
              this.conn = null;
              await this.renew();
            }
            continue;
          }
          const delay = this.retryDelay(err, code, attempt);
          if (delay === null) throw this.clean(err, what);
          await sleep(delay);
        }
      }
    });
  }

  private retryDelay(err: unknown, code: string, attempt: number): number | null {
    if (attempt >= this.options.maxRetries) return null;
    const message = messageOf(err);
    if (code === "REQUEST_LIMIT_EXCEEDED") {
      // The 24-hour API allowance does not come back within a retry; only concurrency limits do.
      if (/TotalRequests/i.test(message)) return null;
    } else if (
      !/^ERROR_HTTP_(429|5\d\d)$/.test(code) &&
      code !== "SERVER_UNAVAILABLE" &&
      !TRANSIENT_NETWORK.has(code)
    ) {
      return null;
    }
    const base = this.options.retryBaseMs * 2 ** attempt;
    return Math.min(30_000, base / 2 + Math.random() * (base / 2));
  }

  /** A SalesforceError with the provider's message, minus any secret. */
  private clean(err: unknown, what: string): SalesforceError {
    // Ours already say what to fix and hold no secret.
    if (err instanceof SalesforceError) return err;
    const code = errorCode(err);
    let message = this.scrub(messageOf(err));
    if (code === "REQUEST_LIMIT_EXCEEDED" && /TotalRequests/i.test(message)) {
      message +=
        " (the org's 24-hour API allowance is used up; the run can resume when Setup > System Overview shows requests left)";
    }
    return new SalesforceError(
      `Salesforce ${what}: ${code !== "ERROR" && !message.includes(code) ? `${code}: ` : ""}${message}`,
      code,
    );
  }

  private scrub(text: string): string {
    const s = this.settings;
    const secrets = [
      s.password,
      s.securityToken,
      s.password && s.securityToken ? `${s.password}${s.securityToken}` : "",
      s.clientSecret,
      s.token,
      s.privateKey,
      this.tokens?.accessToken,
      this.tokens?.refreshToken,
      this.conn?.accessToken ?? undefined,
    ].filter((x): x is string => typeof x === "string" && x.length >= 4);
    secrets.sort((a, b) => b.length - a.length);
    let out = text;
    for (const secret of secrets) out = out.split(secret).join("[redacted]");
    return out;
  }

  // ---- Bulk API 2.0 ---------------------------------------------------------

  /**
   * A page of a full read through a Bulk API 2.0 query job, or null to read by REST.
   * Bulk is used for a read from the start of an object larger than the threshold, and
   * continued page by page (maxRecords + locator) while the caller asks for the page
   * after the last one handed out. Bulk results are in no particular order (ORDER BY
   * would turn off PK chunking), so a full read resumed elsewhere than where this
   * process left it continues by REST from that id.
   */
  private async readBulk(request: ReadRequest, fields: string[]): Promise<SyncRecord[] | null> {
    const key = JSON.stringify([request.object, fields]);
    const cursor = this.bulkCursor;
    if (cursor && cursor.key === key && request.after?.id && cursor.lastId === request.after.id) {
      return this.bulkPage(cursor, request.limit, fields);
    }
    if (request.after?.id) return null;
    const obj = soqlName(request.object, "object");
    const count = await this.soql(`count ${obj}`, `SELECT COUNT() FROM ${obj}`);
    if (count.totalSize <= this.options.bulkQueryThreshold) return null;
    const job = await this.call(`bulk query ${obj}`, (conn) =>
      conn.request<BulkJob>({
        method: "POST",
        url: "/jobs/query",
        body: JSON.stringify({
          operation: "query",
          query: `SELECT ${fields.join(", ")} FROM ${obj}`,
        }),
        headers: { "content-type": "application/json" },
      }),
    );
    await this.waitForJob("query", job.id);
    const fresh: BulkCursor = { key, jobId: job.id, locator: null, lastId: null };
    this.bulkCursor = fresh;
    return this.bulkPage(fresh, request.limit, fields);
  }

  private async bulkPage(
    cursor: BulkCursor,
    limit: number,
    fields: string[],
  ): Promise<SyncRecord[]> {
    if (cursor.locator === "null") return [];
    const params = new URLSearchParams({ maxRecords: String(limitOf(limit)) });
    if (cursor.locator) params.set("locator", cursor.locator);
    let locator: string | null = null;
    const csv = await this.call("bulk query results", (conn) => {
      const api = new HttpApi(conn, { responseType: "text/plain" });
      api.on("response", (res: { headers: Record<string, string | undefined> }) => {
        locator = res.headers["sforce-locator"] ?? "null";
      });
      return api.request<string>({
        method: "GET",
        url: `${conn.instanceUrl}/services/data/v${this.options.apiVersion}/jobs/query/${cursor.jobId}/results?${params}`,
        headers: { Accept: "text/csv" },
      }) as Promise<string>;
    });
    const types = await this.fieldTypes(cursor.key);
    const records = parseCsv(csv).map((row) => fromBulkRow(row, fields, types));
    cursor.locator = locator ?? "null";
    cursor.lastId = records.length ? String(records[records.length - 1].Id) : cursor.lastId;
    return records;
  }

  /** Field types of the object being bulk-read, so CSV cells become the values REST would give. */
  private async fieldTypes(cursorKey: string): Promise<Map<string, string>> {
    const [object] = JSON.parse(cursorKey) as [string];
    const cached = this.typeCache.get(object);
    if (cached) return cached;
    const types = new Map((await this.describe(object)).map((f) => [f.name.toLowerCase(), f.type]));
    this.typeCache.set(object, types);
    return types;
  }

  private async waitForJob(kind: "query" | "ingest", id: string): Promise<BulkJob> {
    const deadline = Date.now() + this.options.bulkPollTimeoutMs;
    for (;;) {
      const job = await this.call(`bulk ${kind} job`, (conn) =>
        conn.request<BulkJob>(`/jobs/${kind}/${id}`),
      );
      if (job.state === "JobComplete") return job;
      if (job.state === "Failed" || job.state === "Aborted") {
        throw new SalesforceError(
          `Salesforce bulk ${kind} job ${id} ${job.state.toLowerCase()}${job.errorMessage ? `: ${this.scrub(job.errorMessage)}` : ""}`,
          "BULK_JOB_FAILED",
        );
      }
      if (Date.now() > deadline) {
        throw new SalesforceError(
          `Salesforce bulk ${kind} job ${id} did not finish within ${Math.round(this.options.bulkPollTimeoutMs / 1000)} s; raise bulkPollTimeoutMs or look at Setup > Bulk Data Load Jobs`,
          "BULK_TIMEOUT",
        );
      }
      await sleep(this.options.bulkPollIntervalMs);
    }
  }

  private async upsertBulk(
    obj: string,
    key: string,
    records: SyncRecord[],
  ): Promise<UpsertResult[]> {
    const columns = [key];
    for (const r of records) {
      for (const f of Object.keys(r)) {
        if (f === "attributes" || f.toLowerCase() === "id") continue;
        soqlName(f, "field");
        if (!columns.includes(f)) columns.push(f);
      }
    }
    const csv = toCsv(
      columns,
      records.map((r) => columns.map((c) => bulkCell(c in r ? r[c] : undefined))),
    );
    const job = await this.call(`bulk upsert ${obj}`, (conn) =>
      conn.request<BulkJob>({
        method: "POST",
        url: "/jobs/ingest",
        body: JSON.stringify({
          object: obj,
          operation: "upsert",
          externalIdFieldName: key,
          contentType: "CSV",
          lineEnding: "LF",
        }),
        headers: { "content-type": "application/json" },
      }),
    );
    await this.call(`bulk upsert ${obj}`, (conn) =>
      conn.request({
        method: "PUT",
        url: `/jobs/ingest/${job.id}/batches`,
        body: csv,
        headers: { "content-type": "text/csv" },
      }),
    );
    await this.call(`bulk upsert ${obj}`, (conn) =>
      conn.request({
        method: "PATCH",
        url: `/jobs/ingest/${job.id}`,
        body: JSON.stringify({ state: "UploadComplete" }),
        headers: { "content-type": "application/json" },
      }),
    );
    await this.waitForJob("ingest", job.id);
    const fetchCsv = (part: string) =>
      this.call(`bulk upsert results ${obj}`, (conn) => {
        const api = new HttpApi(conn, { responseType: "text/plain" });
        return api.request<string>({
          method: "GET",
          url: `${conn.instanceUrl}/services/data/v${this.options.apiVersion}/jobs/ingest/${job.id}/${part}`,
          headers: { Accept: "text/csv" },
        }) as Promise<string>;
      });
    const outcome = new Map<string, { action: "insert" | "update" | "failed"; error?: string }[]>();
    const note = (k: string, v: { action: "insert" | "update" | "failed"; error?: string }) => {
      const list = outcome.get(k) ?? [];
      list.push(v);
      outcome.set(k, list);
    };
    for (const row of parseCsv(await fetchCsv("successfulResults"))) {
      note(row[key] ?? "", { action: row.sf__Created === "true" ? "insert" : "update" });
    }
    for (const row of parseCsv(await fetchCsv("failedResults"))) {
      note(row[key] ?? "", { action: "failed", error: this.scrub(row.sf__Error || "failed") });
    }
    for (const row of parseCsv(await fetchCsv("unprocessedrecords"))) {
      note(row[key] ?? "", {
        action: "failed",
        error: "not processed: the bulk job stopped before this record",
      });
    }
    return records.map((r) => {
      const k = r[key] ?? null;
      const found = outcome.get(bulkCell(k))?.shift();
      return found
        ? { key: [k], ...found }
        : {
            key: [k],
            action: "failed" as const,
            error: "Salesforce returned no result for this record",
          };
    });
  }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function describeErrors(errors: UpsertItem["errors"]): string {
  if (!errors?.length) return "failed without an error message";
  return errors
    .map(
      (e) =>
        `${e.statusCode ?? "ERROR"}: ${e.message ?? ""}${e.fields?.length ? ` (${e.fields.join(", ")})` : ""}`,
    )
    .join("; ");
}

/** A REST record as a SyncRecord: no `attributes`, relationship fields flattened to their dotted names. */
function toSyncRecord(raw: Record<string, unknown>, fields: string[]): SyncRecord {
  const out: SyncRecord = {};
  for (const f of fields) {
    let v: unknown = raw;
    for (const part of f.split(".")) {
      v = v && typeof v === "object" ? lookup(v as Record<string, unknown>, part) : undefined;
    }
    out[f] = toValue(v);
  }
  return out;
}

/** SOQL names are case-insensitive; the response uses the field's own spelling. */
function lookup(obj: Record<string, unknown>, name: string): unknown {
  if (name in obj) return obj[name];
  const lower = name.toLowerCase();
  for (const k of Object.keys(obj)) if (k.toLowerCase() === lower) return obj[k];
  return undefined;
}

function toValue(v: unknown): Value {
  if (v === undefined || v === null) return null;
  if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") return v;
  if (Array.isArray(v)) return v.map(toValue);
  if (typeof v === "object") {
    const out: { [key: string]: Value } = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>))
      if (k !== "attributes") out[k] = toValue(x);
    return out;
  }
  return String(v);
}

const NUMERIC = new Set(["int", "double", "currency", "percent", "long"]);

/**
 * A Bulk CSV row as the record REST would return: empty cells are null (Bulk 2.0
 * writes null as an empty cell), booleans and numbers typed by the field's describe.
 */
function fromBulkRow(
  row: Record<string, string>,
  fields: string[],
  types: Map<string, string>,
): SyncRecord {
  const out: SyncRecord = {};
  for (const f of fields) {
    const v = lookup(row, f) as string | undefined;
    const type = types.get(f.toLowerCase());
    if (v === undefined || v === "") out[f] = null;
    else if (type === "boolean") out[f] = v === "true";
    else if (type && NUMERIC.has(type) && Number.isFinite(Number(v))) out[f] = Number(v);
    else out[f] = v;
  }
  return out;
}

/** Fields for a collection upsert: no Id (the external ID keys it), binary as base64. */
function toSalesforceValues(record: SyncRecord): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(record)) {
    if (k === "attributes" || k.toLowerCase() === "id") continue;
    soqlName(k, "field");
    out[k] = Buffer.isBuffer(v) ? v.toString("base64") : v;
  }
  return out;
}

/** A Bulk ingest cell: "#N/A" sets a field to null (an empty cell would leave it unchanged). */
function bulkCell(v: Value | undefined): string {
  if (v === undefined) return "";
  if (v === null) return "#N/A";
  if (Buffer.isBuffer(v)) return v.toString("base64");
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

export function toCsv(columns: string[], rows: string[][]): string {
  const cell = (s: string) => (/[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  return [columns, ...rows].map((r) => r.map(cell).join(",")).join("\n") + "\n";
}

/** RFC 4180 CSV with a header row, as Bulk API 2.0 returns it. */
export function parseCsv(text: string): Record<string, string>[] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = "";
  let quoted = false;
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i += 2;
        continue;
      }
      if (c === '"') quoted = false;
      else cell += c;
      i++;
      continue;
    }
    if (c === '"') quoted = true;
    else if (c === ",") {
      row.push(cell);
      cell = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(cell);
      rows.push(row);
      row = [];
      cell = "";
    } else cell += c;
    i++;
  }
  if (cell !== "" || row.length) {
    row.push(cell);
    rows.push(row);
  }
  const [header, ...data] = rows.filter((r) => !(r.length === 1 && r[0] === ""));
  if (!header) return [];
  return data.map((r) => Object.fromEntries(header.map((h, j) => [h, r[j] ?? ""])));
}

/** The provider index.ts wires for provider "salesforce". */
export function createSalesforce(
  settings: CrmSettings,
  auth?: ProviderAuth,
  options?: SalesforceOptions,
): SalesforceProvider {
  // Without a store, sessions live in memory only (a restart logs in again).
  return new SalesforceProvider(settings, auth ?? memoryAuth(), options);
}
