/**
 * A local Salesforce for tests: the request and response shapes of the documented
 * endpoints that nodes/lib/crm/salesforce.ts drives through jsforce, with controls
 * to expire sessions, refuse renewed ones, rotate refresh tokens and answer
 * REQUEST_LIMIT_EXCEEDED. It serves login and data on one origin (login URL =
 * instance URL), which the real service splits across hosts.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { createHash, createVerify, randomBytes } from "node:crypto";
import { createFakeApp, listenLocal, rawBody, sendRaw } from "./fastify-app";
import { parseCSV, toCSV } from "jsforce/lib/csv";

export interface FakeField {
  name: string;
  label?: string;
  type?: string;
  externalId?: boolean;
  /** Required on create (nillable false, no default), e.g. Contact.LastName. */
  required?: boolean;
}

export type FakeRecord = Record<string, string | number | boolean | null>;

interface FakeObject {
  name: string;
  label: string;
  fields: FakeField[];
  records: Map<string, FakeRecord>;
  prefix: string;
}

interface Session {
  token: string;
  valid: boolean;
}

interface QueryJob {
  id: string;
  rows: FakeRecord[];
  fields: string[];
  polls: number;
}

interface IngestJob {
  id: string;
  object: string;
  externalIdFieldName: string;
  state: string;
  csv: string;
  polls: number;
  success: Record<string, string>[];
  failed: Record<string, string>[];
}

export interface RequestLogEntry {
  method: string;
  path: string;
  status: number;
}

const API_VERSION_RE = /^\/services\/data\/v(\d+\.\d+)(\/.*)?$/;

export class FakeSalesforce {
  readonly orgId = "00D000000000001EAA";
  readonly userId = "005000000000001AAA";
  username = "analyst@example.com";
  password = "Hunter2-pass";
  securityToken = "SECTOKEN42xyz";
  clientId = "3MVG9-fake-client";
  clientSecret = "fake-client-secret-123";
  /** PEM public key that verifies JWT bearer assertions. */
  jwtPublicKey = "";
  /** Issue a new refresh token on every refresh (connected app's rotation setting). */
  rotateRefreshTokens = false;
  /** Records per query page (Salesforce's default is 2,000). */
  queryBatchSize = 2000;
  /** Polls a Bulk job stays InProgress before JobComplete. */
  bulkPolls = 1;
  /** Every data call answers INVALID_SESSION_ID, even with a fresh token (revoked app). */
  refuseAllSessions = false;
  /** The next n data calls answer 403 REQUEST_LIMIT_EXCEEDED with this message. */
  limitExceeded = { remaining: 0, message: "ConcurrentPerOrgLongTxn Limit exceeded." };
  dailyApi = { Max: 15000, Remaining: 14200 };
  /**
   * Called for every request before it is answered (before the session is checked), with
   * its 1-based ordinal: lets a test act at an exact point, e.g. expireSessions() after
   * the second query page.
   */
  onRequest: ((req: { method: string; path: string; count: number }) => void) | null = null;
  private requestCount = 0;

  readonly refreshTokens = new Set<string>(["refresh-initial-0001"]);
  readonly sessions = new Map<string, Session>();
  readonly log: RequestLogEntry[] = [];
  readonly logins: string[] = [];
  readonly revoked: string[] = [];
  readonly objects = new Map<string, FakeObject>();
  private readonly cursors = new Map<
    string,
    { rows: FakeRecord[]; fields: string[]; object: string }
  >();
  private readonly queryJobs = new Map<string, QueryJob>();
  private readonly ingestJobs = new Map<string, IngestJob>();
  private seq = 0;
  private app: FastifyInstance | null = null;
  url = "";

  constructor() {
    this.defineObject("Organization", "Organization", [{ name: "Name" }], "00D");
    this.objects
      .get("Organization")!
      .records.set(this.orgId, { Id: this.orgId, Name: "Acme Test Org" });
    this.defineObject(
      "Contact",
      "Contact",
      [
        { name: "FirstName" },
        { name: "LastName", required: true },
        { name: "Email", type: "email" },
        { name: "External_Id__c", type: "string", externalId: true },
        { name: "Score__c", type: "double" },
        { name: "Active__c", type: "boolean" },
      ],
      "003",
    );
    this.defineObject("Account", "Account", [{ name: "Name", required: true }], "001");
  }

  defineObject(name: string, label: string, fields: FakeField[], prefix: string): void {
    const system: FakeField[] = [
      { name: "Id", type: "id" },
      { name: "SystemModstamp", type: "datetime" },
      { name: "CreatedDate", type: "datetime" },
    ];
    this.objects.set(name, {
      name,
      label,
      fields: [...system, ...fields],
      records: new Map(),
      prefix,
    });
  }

  /** A Salesforce-shaped 18-character id, increasing in creation order. */
  newId(object: string): string {
    const o = this.objects.get(object)!;
    this.seq++;
    return `${o.prefix}${"0".repeat(6)}${String(this.seq).padStart(6, "0")}AAA`;
  }

  insert(object: string, record: FakeRecord): FakeRecord {
    const o = this.objects.get(object)!;
    const id = typeof record.Id === "string" ? record.Id : this.newId(object);
    const now = sfNow();
    const full: FakeRecord = { SystemModstamp: now, CreatedDate: now, ...record, Id: id };
    o.records.set(id, full);
    return full;
  }

  /** Marks every issued session expired, as a session timeout does. */
  expireSessions(): void {
    for (const s of this.sessions.values()) s.valid = false;
  }

  issueSession(): string {
    const token = `00D!${randomBytes(24).toString("base64url")}`;
    this.sessions.set(token, { token, valid: true });
    return token;
  }

  count(path: string): number {
    return this.log.filter((e) => e.path.startsWith(path)).length;
  }

  async start(): Promise<string> {
    const app = createFakeApp((req, res) =>
      this.handle(req, res).catch((err: unknown) => {
        this.reply(req, res, 500, [{ errorCode: "UNKNOWN_EXCEPTION", message: String(err) }]);
      }),
    );
    this.url = await listenLocal(app);
    this.app = app;
    return this.url;
  }

  async stop(): Promise<void> {
    if (!this.app) return;
    const app = this.app;
    this.app = null;
    await app.close();
  }

  // ---- plumbing -------------------------------------------------------------

  private reply(
    req: FastifyRequest,
    res: FastifyReply,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
  ): void {
    this.log.push({ method: req.method ?? "", path: (req.url ?? "").split("?")[0], status });
    if (typeof body === "string") {
      sendRaw(
        res,
        status,
        { "content-type": headers["content-type"] ?? "text/plain", ...headers },
        body,
      );
      return;
    }
    if (body === undefined) {
      sendRaw(res, status, headers);
      return;
    }
    sendRaw(
      res,
      status,
      { "content-type": "application/json;charset=UTF-8", ...headers },
      JSON.stringify(body),
    );
  }

  /** The body as sent (fastify has read it; every content type is kept unparsed). */
  private async body(req: FastifyRequest): Promise<string> {
    return rawBody(req);
  }

  private async handle(req: FastifyRequest, res: FastifyReply): Promise<void> {
    const url = new URL(req.url ?? "/", this.url);
    const path = url.pathname;
    const method = req.method ?? "GET";
    this.requestCount++;
    this.onRequest?.({ method, path, count: this.requestCount });

    if (method === "POST" && /^\/services\/Soap\/u\/[\d.]+$/.test(path))
      return this.soapLogin(req, res);
    if (method === "POST" && path === "/services/oauth2/token") return this.token(req, res);
    if (method === "POST" && path === "/services/oauth2/revoke") return this.revoke(req, res);

    // Everything below needs a session: Bearer header (REST) or oauth_token (identity URL).
    const bearer =
      /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1] ??
      url.searchParams.get("oauth_token");
    const session = bearer ? this.sessions.get(bearer) : undefined;
    if (!session || !session.valid || this.refuseAllSessions) {
      // https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm (401)
      return this.reply(req, res, 401, [
        { message: "Session expired or invalid", errorCode: "INVALID_SESSION_ID" },
      ]);
    }
    if (this.limitExceeded.remaining > 0) {
      this.limitExceeded.remaining--;
      // https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm (403 REQUEST_LIMIT_EXCEEDED)
      return this.reply(req, res, 403, [
        { message: this.limitExceeded.message, errorCode: "REQUEST_LIMIT_EXCEEDED" },
      ]);
    }

    const idMatch = /^\/id\/([^/]+)\/([^/]+)$/.exec(path);
    if (method === "GET" && idMatch) return this.identity(req, res);

    const m = API_VERSION_RE.exec(path);
    if (!m)
      return this.reply(req, res, 404, [
        { errorCode: "NOT_FOUND", message: "The requested resource does not exist" },
      ]);
    const version = m[1];
    const rest = m[2] ?? "/";

    if (method === "GET" && (rest === "/" || rest === "")) {
      // https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_discoveryresource.htm
      return this.reply(req, res, 200, {
        sobjects: `/services/data/v${version}/sobjects`,
        query: `/services/data/v${version}/query`,
        limits: `/services/data/v${version}/limits`,
        identity: `${this.url}/id/${this.orgId}/${this.userId}`,
      });
    }
    if (method === "GET" && rest === "/limits") {
      // https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_limits.htm
      return this.reply(req, res, 200, {
        DailyApiRequests: { ...this.dailyApi },
        DailyBulkV2QueryJobs: { Max: 10000, Remaining: 10000 },
      });
    }
    if (method === "GET" && rest === "/sobjects") return this.describeGlobal(req, res);
    const describe = /^\/sobjects\/([^/]+)\/describe\/?$/.exec(rest);
    if (method === "GET" && describe) return this.describe(req, res, describe[1]);
    if (method === "GET" && rest === "/query")
      return this.query(req, res, version, url.searchParams.get("q") ?? "");
    const more = /^\/query\/([^/]+)-(\d+)$/.exec(rest);
    if (method === "GET" && more)
      return this.queryMore(req, res, version, more[1], Number(more[2]));
    const upsert = /^\/composite\/sobjects\/([^/]+)\/([^/]+)$/.exec(rest);
    if (method === "PATCH" && upsert) return this.upsert(req, res, upsert[1], upsert[2]);
    if (rest.startsWith("/jobs/query")) return this.bulkQuery(req, res, method, rest, url);
    if (rest.startsWith("/jobs/ingest")) return this.bulkIngest(req, res, method, rest);
    return this.reply(req, res, 404, [
      { errorCode: "NOT_FOUND", message: "The requested resource does not exist" },
    ]);
  }

  // ---- auth -----------------------------------------------------------------

  /** https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_login.htm */
  private async soapLogin(req: FastifyRequest, res: FastifyReply): Promise<void> {
    const xml = await this.body(req);
    const username = unxml(/<username>([^<]*)<\/username>/.exec(xml)?.[1] ?? "");
    const password = unxml(/<password>([^<]*)<\/password>/.exec(xml)?.[1] ?? "");
    if (username !== this.username || password !== this.password + this.securityToken) {
      const fault =
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com"><soapenv:Body><soapenv:Fault><faultcode>sf:INVALID_LOGIN</faultcode><faultstring>INVALID_LOGIN: Invalid username, password, security token; or user locked out.</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>';
      return this.reply(req, res, 500, fault, { "content-type": "text/xml" });
    }
    const sessionId = this.issueSession();
    this.logins.push("soap");
    const ok = `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com"><soapenv:Body><loginResponse><result><metadataServerUrl>${this.url}/services/Soap/m/62.0/${this.orgId}</metadataServerUrl><passwordExpired>false</passwordExpired><sandbox>true</sandbox><serverUrl>${this.url}/services/Soap/u/62.0/${this.orgId}</serverUrl><sessionId>${sessionId}</sessionId><userId>${this.userId}</userId><userInfo><organizationId>${this.orgId}</organizationId><userName>${this.username}</userName></userInfo><organizationId>${this.orgId}</organizationId></result></loginResponse></soapenv:Body></soapenv:Envelope>`;
    return this.reply(req, res, 200, ok, { "content-type": "text/xml" });
  }

  private tokenResponse(extra: Record<string, string> = {}): Record<string, string> {
    return {
      access_token: this.issueSession(),
      signature: randomBytes(16).toString("base64"),
      scope: "api refresh_token",
      instance_url: this.url,
      id: `${this.url}/id/${this.orgId}/${this.userId}`,
      token_type: "Bearer",
      issued_at: String(Date.now()),
      ...extra,
    };
  }

  private async token(req: FastifyRequest, res: FastifyReply): Promise<void> {
    const form = new URLSearchParams(await this.body(req));
    const grant = form.get("grant_type");
    const invalid = (description: string) =>
      this.reply(req, res, 400, { error: "invalid_grant", error_description: description });
    if (grant === "refresh_token") {
      // https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_refresh_token_flow.htm
      if (
        form.get("client_id") !== this.clientId ||
        form.get("client_secret") !== this.clientSecret
      ) {
        return this.reply(req, res, 400, {
          error: "invalid_client",
          error_description: "invalid client credentials",
        });
      }
      const rt = form.get("refresh_token") ?? "";
      if (!this.refreshTokens.has(rt)) return invalid("expired access/refresh token");
      this.logins.push("refresh");
      if (this.rotateRefreshTokens) {
        // Rotation: the old refresh token stops working as the new one is issued.
        this.refreshTokens.delete(rt);
        const next = `refresh-${randomBytes(12).toString("hex")}`;
        this.refreshTokens.add(next);
        return this.reply(req, res, 200, this.tokenResponse({ refresh_token: next }));
      }
      return this.reply(req, res, 200, this.tokenResponse());
    }
    if (grant === "password") {
      // https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_username_password_flow.htm
      if (
        form.get("client_id") !== this.clientId ||
        form.get("client_secret") !== this.clientSecret
      ) {
        return this.reply(req, res, 400, {
          error: "invalid_client",
          error_description: "invalid client credentials",
        });
      }
      if (
        form.get("username") !== this.username ||
        form.get("password") !== this.password + this.securityToken
      ) {
        return invalid("authentication failure");
      }
      this.logins.push("password");
      return this.reply(req, res, 200, this.tokenResponse());
    }
    if (grant === "urn:ietf:params:oauth:grant-type:jwt-bearer") {
      // https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm
      const [h, c, sig] = (form.get("assertion") ?? "").split(".");
      if (!h || !c || !sig) return invalid("invalid assertion");
      const header = JSON.parse(Buffer.from(h, "base64url").toString()) as { alg?: string };
      const claims = JSON.parse(Buffer.from(c, "base64url").toString()) as Record<string, unknown>;
      const verified =
        header.alg === "RS256" &&
        !!this.jwtPublicKey &&
        createVerify("RSA-SHA256").update(`${h}.${c}`).verify(this.jwtPublicKey, sig, "base64url");
      if (!verified) return invalid("invalid assertion");
      if (claims.iss !== this.clientId)
        return this.reply(req, res, 400, {
          error: "invalid_client_id",
          error_description: "client identifier invalid",
        });
      if (claims.sub !== this.username) return invalid("user hasn't approved this consumer");
      if (claims.aud !== this.url) return invalid("audience is invalid");
      if (typeof claims.exp !== "number" || claims.exp * 1000 < Date.now())
        return invalid("expired authorization code");
      this.logins.push("jwt");
      const body = this.tokenResponse();
      delete body.refresh_token;
      return this.reply(req, res, 200, body);
    }
    return this.reply(req, res, 400, {
      error: "unsupported_grant_type",
      error_description: "grant type not supported",
    });
  }

  /** https://help.salesforce.com/s/articleView?id=sf.remoteaccess_revoke_token.htm */
  private async revoke(req: FastifyRequest, res: FastifyReply): Promise<void> {
    const token = new URLSearchParams(await this.body(req)).get("token") ?? "";
    if (this.refreshTokens.delete(token) || this.sessions.has(token)) {
      this.sessions.delete(token);
      this.revoked.push(token);
      return this.reply(req, res, 200, undefined);
    }
    return this.reply(req, res, 400, "error=invalid_token&error_description=invalid token", {
      "content-type": "application/x-www-form-urlencoded",
    });
  }

  /** https://help.salesforce.com/s/articleView?id=sf.remoteaccess_using_openid.htm (Identity URLs) */
  private identity(req: FastifyRequest, res: FastifyReply): void {
    return this.reply(req, res, 200, {
      id: `${this.url}/id/${this.orgId}/${this.userId}`,
      asserted_user: true,
      user_id: this.userId,
      organization_id: this.orgId,
      username: this.username,
      nick_name: "analyst",
      display_name: "Ana Lyst",
      email: this.username,
      active: true,
      user_type: "STANDARD",
    });
  }

  // ---- metadata -------------------------------------------------------------

  /** https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_describeGlobal.htm */
  private describeGlobal(req: FastifyRequest, res: FastifyReply): void {
    return this.reply(req, res, 200, {
      encoding: "UTF-8",
      maxBatchSize: 200,
      sobjects: [...this.objects.values()].map((o) => ({
        name: o.name,
        label: o.label,
        keyPrefix: o.prefix,
        queryable: true,
        retrieveable: true,
        createable: o.name !== "Organization",
        updateable: o.name !== "Organization",
        custom: o.name.endsWith("__c"),
        urls: { describe: `/services/data/v62.0/sobjects/${o.name}/describe` },
      })),
    });
  }

  /** https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_describe.htm */
  private describe(req: FastifyRequest, res: FastifyReply, name: string): void {
    const o = this.objects.get(name);
    if (!o)
      return this.reply(req, res, 404, [
        { errorCode: "NOT_FOUND", message: `The requested resource does not exist` },
      ]);
    return this.reply(req, res, 200, {
      name: o.name,
      label: o.label,
      fields: o.fields.map((f) => ({
        name: f.name,
        label: f.label ?? f.name,
        type: f.type ?? "string",
        externalId: f.externalId === true,
        unique: f.externalId === true,
        idLookup: f.name === "Id" || f.externalId === true,
        nillable: !f.required && f.name !== "Id",
      })),
    });
  }

  // ---- queries --------------------------------------------------------------

  private field(o: FakeObject, name: string): string | null {
    return o.fields.find((f) => f.name.toLowerCase() === name.toLowerCase())?.name ?? null;
  }

  /** Runs the SOQL subset the provider sends: SELECT list FROM X [WHERE ...] [ORDER BY ...] [LIMIT n]. */
  runSoql(soql: string): { object: string; fields: string[]; rows: FakeRecord[]; count: boolean } {
    const m =
      /^SELECT\s+(.+?)\s+FROM\s+(\w+)(?:\s+WHERE\s+(.+?))?(?:\s+ORDER BY\s+(.+?))?(?:\s+LIMIT\s+(\d+))?$/i.exec(
        soql.trim(),
      );
    if (!m) throw new SoqlError("MALFORMED_QUERY", `unexpected token in: ${soql}`);
    const [, select, objectName, where, orderBy, limit] = m;
    const o = this.objects.get(objectName);
    if (!o) throw new SoqlError("INVALID_TYPE", `sObject type '${objectName}' is not supported.`);
    const count = /^COUNT\(\)$/i.test(select.trim());
    const fields = count
      ? []
      : select.split(",").map((s) => {
          const f = this.field(o, s.trim());
          if (!f)
            throw new SoqlError(
              "INVALID_FIELD",
              `No such column '${s.trim()}' on entity '${o.name}'.`,
            );
          return f;
        });
    let rows = [...o.records.values()];
    if (where) {
      const pred = new WhereParser(where, (n) => {
        const f = this.field(o, n);
        if (!f)
          throw new SoqlError("INVALID_FIELD", `No such column '${n}' on entity '${o.name}'.`);
        return f;
      }).parse();
      rows = rows.filter(pred);
    }
    if (orderBy) {
      const keys = orderBy.split(",").map((k) => this.field(o, k.trim().split(/\s+/)[0])!);
      rows.sort((a, b) => {
        for (const k of keys) {
          const c = compare(a[k], b[k]);
          if (c) return c;
        }
        return 0;
      });
    }
    if (limit) rows = rows.slice(0, Number(limit));
    return { object: o.name, fields, rows, count };
  }

  private shape(object: string, fields: string[], row: FakeRecord): Record<string, unknown> {
    const out: Record<string, unknown> = {
      attributes: {
        type: object,
        url: `/services/data/v62.0/sobjects/${object}/${String(row.Id)}`,
      },
    };
    for (const f of fields) out[f] = row[f] ?? null;
    return out;
  }

  /** https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_query.htm */
  private query(req: FastifyRequest, res: FastifyReply, version: string, soql: string): void {
    let result;
    try {
      result = this.runSoql(soql);
    } catch (err) {
      if (err instanceof SoqlError)
        return this.reply(req, res, 400, [{ message: err.message, errorCode: err.code }]);
      throw err;
    }
    if (result.count)
      return this.reply(req, res, 200, { totalSize: result.rows.length, done: true, records: [] });
    const locator = `01g${randomBytes(6).toString("hex")}`;
    this.cursors.set(locator, { rows: result.rows, fields: result.fields, object: result.object });
    return this.page(req, res, version, locator, 0, this.batchSize(req));
  }

  private batchSize(req: FastifyRequest): number {
    // Sforce-Query-Options: batchSize=n (200..2000) — resources_query.htm / headers_queryoptions.htm
    const m = /batchSize=(\d+)/.exec(String(req.headers["sforce-query-options"] ?? ""));
    return m ? Math.min(2000, Math.max(200, Number(m[1]))) : this.queryBatchSize;
  }

  private page(
    req: FastifyRequest,
    res: FastifyReply,
    version: string,
    locator: string,
    offset: number,
    size: number,
  ): void {
    const cur = this.cursors.get(locator);
    if (!cur)
      return this.reply(req, res, 400, [
        { errorCode: "INVALID_QUERY_LOCATOR", message: "invalid query locator" },
      ]);
    const slice = cur.rows.slice(offset, offset + size);
    const next = offset + slice.length;
    const done = next >= cur.rows.length;
    return this.reply(req, res, 200, {
      totalSize: cur.rows.length,
      done,
      ...(done ? {} : { nextRecordsUrl: `/services/data/v${version}/query/${locator}-${next}` }),
      records: slice.map((r) => this.shape(cur.object, cur.fields, r)),
    });
  }

  /** nextRecordsUrl of resources_query.htm */
  private queryMore(
    req: FastifyRequest,
    res: FastifyReply,
    version: string,
    locator: string,
    offset: number,
  ): void {
    return this.page(req, res, version, locator, offset, this.batchSize(req));
  }

  // ---- writes ---------------------------------------------------------------

  /** Creates or updates one record by external id, as an upsert does; returns an error text or the outcome. */
  private upsertOne(
    o: FakeObject,
    extField: string,
    input: Record<string, unknown>,
  ): {
    id?: string;
    created?: boolean;
    error?: { statusCode: string; message: string; fields: string[] };
  } {
    const values: FakeRecord = {};
    for (const [k, v] of Object.entries(input)) {
      if (k === "attributes") continue;
      const f = this.field(o, k);
      if (!f)
        return {
          error: {
            statusCode: "INVALID_FIELD",
            message: `No such column '${k}' on sobject of type ${o.name}`,
            fields: [k],
          },
        };
      if (f === "Id")
        return {
          error: {
            statusCode: "INVALID_FIELD_FOR_INSERT_UPDATE",
            message: "Unable to create/update fields: Id",
            fields: ["Id"],
          },
        };
      values[f] = v as FakeRecord[string];
    }
    const key = values[extField];
    if (key === undefined || key === null || key === "") {
      return {
        error: {
          statusCode: "MISSING_ARGUMENT",
          message: `${extField} not specified`,
          fields: [extField],
        },
      };
    }
    const existing = [...o.records.values()].find((r) => r[extField] === key);
    const now = sfNow();
    if (existing) {
      Object.assign(existing, values, { SystemModstamp: now });
      return { id: String(existing.Id), created: false };
    }
    const missing = o.fields
      .filter((f) => f.required && (values[f.name] === undefined || values[f.name] === null))
      .map((f) => f.name);
    if (missing.length) {
      return {
        error: {
          statusCode: "REQUIRED_FIELD_MISSING",
          message: `Required fields are missing: [${missing.join(", ")}]`,
          fields: missing,
        },
      };
    }
    const created = this.insert(o.name, values);
    return { id: String(created.Id), created: true };
  }

  /** https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_upsert.htm */
  private async upsert(
    req: FastifyRequest,
    res: FastifyReply,
    object: string,
    extId: string,
  ): Promise<void> {
    const o = this.objects.get(object);
    if (!o)
      return this.reply(req, res, 404, [
        { errorCode: "NOT_FOUND", message: "The requested resource does not exist" },
      ]);
    const ext = this.field(o, extId);
    if (!ext || !o.fields.find((f) => f.name === ext)?.externalId) {
      return this.reply(req, res, 400, [
        {
          errorCode: "INVALID_FIELD",
          message: `Field name provided, ${extId} is not an External ID or indexed field for ${object}`,
        },
      ]);
    }
    const body = JSON.parse(await this.body(req)) as {
      allOrNone?: boolean;
      records?: Record<string, unknown>[];
    };
    const records = body.records ?? [];
    if (records.length > 200) {
      return this.reply(req, res, 400, [
        {
          errorCode: "EXCEEDED_ID_LIMIT",
          message: "record limit reached. cannot submit more than 200 records into this call",
        },
      ]);
    }
    const results = records.map((r) => {
      const type = (r.attributes as { type?: string } | undefined)?.type;
      if (type !== object) {
        return {
          success: false,
          errors: [
            {
              statusCode: "INVALID_TYPE",
              message: "each record needs attributes.type",
              fields: [],
            },
          ],
        };
      }
      const out = this.upsertOne(o, ext, r);
      return out.error
        ? { success: false, errors: [out.error] }
        : { id: out.id, success: true, errors: [], created: out.created };
    });
    return this.reply(req, res, 200, results);
  }

  // ---- Bulk API 2.0 ---------------------------------------------------------

  private jobInfo(
    id: string,
    operation: string,
    object: string,
    state: string,
    extra: Record<string, unknown> = {},
  ) {
    return {
      id,
      operation,
      object,
      createdById: this.userId,
      state,
      concurrencyMode: "Parallel",
      contentType: "CSV",
      apiVersion: 62.0,
      lineEnding: "LF",
      columnDelimiter: "COMMA",
      ...extra,
    };
  }

  private async bulkQuery(
    req: FastifyRequest,
    res: FastifyReply,
    method: string,
    rest: string,
    url: URL,
  ): Promise<void> {
    if (method === "POST" && rest === "/jobs/query") {
      // https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_create_job.htm
      const body = JSON.parse(await this.body(req)) as { operation?: string; query?: string };
      let result;
      try {
        if (/\bORDER BY\b|\bLIMIT\b|COUNT\(\)/i.test(body.query ?? "")) {
          // Not rejected by Salesforce, but the provider must not send them (PK chunking).
          throw new SoqlError(
            "INVALIDJOB",
            "the fake expects Bulk queries without ORDER BY / LIMIT / COUNT()",
          );
        }
        result = this.runSoql(body.query ?? "");
      } catch (err) {
        if (err instanceof SoqlError)
          return this.reply(req, res, 400, [{ errorCode: err.code, message: err.message }]);
        throw err;
      }
      const id = `750${randomBytes(6).toString("hex")}`;
      // Real jobs return rows in chunk order, not by Id: shuffle deterministically to keep the provider honest.
      const rows = [...result.rows].sort((a, b) => hash(String(a.Id)) - hash(String(b.Id)));
      this.queryJobs.set(id, { id, rows, fields: result.fields, polls: 0 });
      return this.reply(
        req,
        res,
        200,
        this.jobInfo(id, body.operation ?? "query", result.object, "UploadComplete"),
      );
    }
    const results = /^\/jobs\/query\/([^/]+)\/results$/.exec(rest);
    if (method === "GET" && results) {
      // https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_job_results.htm
      const job = this.queryJobs.get(results[1]);
      if (!job)
        return this.reply(req, res, 404, [{ errorCode: "NOT_FOUND", message: "job not found" }]);
      const start = Number(
        url.searchParams.get("locator")
          ? Buffer.from(url.searchParams.get("locator")!, "base64url").toString()
          : "0",
      );
      const max = Number(url.searchParams.get("maxRecords") ?? "50000");
      const slice = job.rows.slice(start, start + max);
      const next = start + slice.length;
      const csv = toCSV(
        slice.map((r) =>
          Object.fromEntries(
            job.fields.map((f) => [f, r[f] === null || r[f] === undefined ? "" : String(r[f])]),
          ),
        ),
        { header: true, columns: job.fields },
      );
      return this.reply(req, res, 200, slice.length ? csv : job.fields.join(",") + "\n", {
        "content-type": "text/csv",
        "sforce-locator":
          next >= job.rows.length ? "null" : Buffer.from(String(next)).toString("base64url"),
        "sforce-numberofrecords": String(slice.length),
      });
    }
    const one = /^\/jobs\/query\/([^/]+)$/.exec(rest);
    if (method === "GET" && one) {
      // https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_one_job.htm
      const job = this.queryJobs.get(one[1]);
      if (!job)
        return this.reply(req, res, 404, [{ errorCode: "NOT_FOUND", message: "job not found" }]);
      job.polls++;
      const state = job.polls > this.bulkPolls ? "JobComplete" : "InProgress";
      return this.reply(
        req,
        res,
        200,
        this.jobInfo(job.id, "query", "", state, { numberRecordsProcessed: job.rows.length }),
      );
    }
    return this.reply(req, res, 404, [
      { errorCode: "NOT_FOUND", message: "The requested resource does not exist" },
    ]);
  }

  private async bulkIngest(
    req: FastifyRequest,
    res: FastifyReply,
    method: string,
    rest: string,
  ): Promise<void> {
    if (method === "POST" && rest === "/jobs/ingest") {
      // https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/create_job.htm
      const body = JSON.parse(await this.body(req)) as {
        object: string;
        operation: string;
        externalIdFieldName?: string;
      };
      if (
        body.operation !== "upsert" ||
        !this.objects.has(body.object) ||
        !body.externalIdFieldName
      ) {
        return this.reply(req, res, 400, [
          {
            errorCode: "INVALIDJOB",
            message: "the fake supports upsert jobs with externalIdFieldName",
          },
        ]);
      }
      const id = `750${randomBytes(6).toString("hex")}`;
      this.ingestJobs.set(id, {
        id,
        object: body.object,
        externalIdFieldName: body.externalIdFieldName,
        state: "Open",
        csv: "",
        polls: 0,
        success: [],
        failed: [],
      });
      return this.reply(
        req,
        res,
        200,
        this.jobInfo(id, "upsert", body.object, "Open", {
          externalIdFieldName: body.externalIdFieldName,
        }),
      );
    }
    const batches = /^\/jobs\/ingest\/([^/]+)\/batches$/.exec(rest);
    if (method === "PUT" && batches) {
      // https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/upload_job_data.htm
      const job = this.ingestJobs.get(batches[1]);
      if (!job || job.state !== "Open")
        return this.reply(req, res, 400, [{ errorCode: "INVALIDJOB", message: "job is not open" }]);
      job.csv += await this.body(req);
      return this.reply(req, res, 201, undefined);
    }
    const parts =
      /^\/jobs\/ingest\/([^/]+)(?:\/(successfulResults|failedResults|unprocessedrecords))?$/.exec(
        rest,
      );
    const job = parts ? this.ingestJobs.get(parts[1]) : undefined;
    if (!parts || !job)
      return this.reply(req, res, 404, [{ errorCode: "NOT_FOUND", message: "job not found" }]);
    if (method === "PATCH" && !parts[2]) {
      // https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/close_job.htm
      const body = JSON.parse(await this.body(req)) as { state?: string };
      if (body.state === "UploadComplete") {
        job.state = "UploadComplete";
        this.processIngest(job);
      } else if (body.state === "Aborted") job.state = "Aborted";
      return this.reply(req, res, 200, this.jobInfo(job.id, "upsert", job.object, job.state));
    }
    if (method === "GET" && !parts[2]) {
      // https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/get_job_info.htm
      if (job.state === "UploadComplete" || job.state === "InProgress") {
        job.polls++;
        job.state = job.polls > this.bulkPolls ? "JobComplete" : "InProgress";
      }
      return this.reply(
        req,
        res,
        200,
        this.jobInfo(job.id, "upsert", job.object, job.state, {
          numberRecordsProcessed: job.success.length + job.failed.length,
          numberRecordsFailed: job.failed.length,
        }),
      );
    }
    if (method === "GET" && parts[2]) {
      // https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/get_job_successful_results.htm
      // https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/get_job_failed_results.htm
      // https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/get_job_unprocessed_results.htm
      const rows =
        parts[2] === "successfulResults"
          ? job.success
          : parts[2] === "failedResults"
            ? job.failed
            : [];
      const header =
        parts[2] === "successfulResults"
          ? ["sf__Id", "sf__Created"]
          : parts[2] === "failedResults"
            ? ["sf__Id", "sf__Error"]
            : [];
      const dataCols = parseCSV(job.csv).length ? Object.keys(parseCSV(job.csv)[0] as object) : [];
      const columns = [...header, ...dataCols];
      const csv = rows.length ? toCSV(rows, { header: true, columns }) : columns.join(",") + "\n";
      return this.reply(req, res, 200, csv, { "content-type": "text/csv" });
    }
    return this.reply(req, res, 404, [
      { errorCode: "NOT_FOUND", message: "The requested resource does not exist" },
    ]);
  }

  private processIngest(job: IngestJob): void {
    const o = this.objects.get(job.object)!;
    for (const row of parseCSV(job.csv) as Record<string, string>[]) {
      const input: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(row)) {
        if (v === "") continue; // an empty cell leaves the field as it is
        input[k] = v === "#N/A" ? null : v;
      }
      const out = this.upsertOne(o, job.externalIdFieldName, input);
      if (out.error)
        job.failed.push({
          sf__Id: "",
          sf__Error: `${out.error.statusCode}:${out.error.message}`,
          ...row,
        });
      else job.success.push({ sf__Id: out.id!, sf__Created: String(out.created), ...row });
    }
  }
}

class SoqlError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** WHERE clauses of the SOQL subset: comparisons joined by AND / OR, with parentheses. */
class WhereParser {
  private readonly tokens: string[];
  private i = 0;
  constructor(
    text: string,
    private readonly field: (name: string) => string,
  ) {
    this.tokens =
      text.match(
        /'(?:\\.|[^'\\])*'|\d{4}-\d{2}-\d{2}T[\d:.]+(?:Z|[+-]\d{2}:?\d{2})|>=|<=|!=|[()=<>]|[\w.]+/g,
      ) ?? [];
  }

  parse(): (r: FakeRecord) => boolean {
    const e = this.or();
    if (this.i !== this.tokens.length)
      throw new SoqlError("MALFORMED_QUERY", `unexpected token: ${this.tokens[this.i]}`);
    return e;
  }

  private or(): (r: FakeRecord) => boolean {
    let left = this.and();
    while (this.tokens[this.i]?.toUpperCase() === "OR") {
      this.i++;
      const l = left;
      const r = this.and();
      left = (x) => l(x) || r(x);
    }
    return left;
  }

  private and(): (r: FakeRecord) => boolean {
    let left = this.atom();
    while (this.tokens[this.i]?.toUpperCase() === "AND") {
      this.i++;
      const l = left;
      const r = this.atom();
      left = (x) => l(x) && r(x);
    }
    return left;
  }

  private atom(): (r: FakeRecord) => boolean {
    if (this.tokens[this.i] === "(") {
      this.i++;
      const e = this.or();
      if (this.tokens[this.i++] !== ")") throw new SoqlError("MALFORMED_QUERY", "missing )");
      return e;
    }
    const f = this.field(this.tokens[this.i++] ?? "");
    const op = this.tokens[this.i++];
    const lit = this.tokens[this.i++] ?? "";
    let value: string | number | boolean | null;
    if (lit.startsWith("'")) value = lit.slice(1, -1).replace(/\\(.)/g, "$1");
    else if (/^\d{4}-\d{2}-\d{2}T/.test(lit)) value = lit;
    else if (/^(true|false)$/i.test(lit)) value = lit.toLowerCase() === "true";
    else if (/^null$/i.test(lit)) value = null;
    else if (/^-?\d+(\.\d+)?$/.test(lit)) value = Number(lit);
    else throw new SoqlError("MALFORMED_QUERY", `unexpected token: ${lit}`);
    const test = {
      "=": (c: number) => c === 0,
      "!=": (c: number) => c !== 0,
      ">": (c: number) => c > 0,
      "<": (c: number) => c < 0,
      ">=": (c: number) => c >= 0,
      "<=": (c: number) => c <= 0,
    }[op as "="];
    if (!test) throw new SoqlError("MALFORMED_QUERY", `unexpected operator: ${op}`);
    return (r) => test(compare(r[f], value));
  }
}

/** Orders values as SOQL does for the types the fake holds; dateTimes by instant. */
function compare(a: unknown, b: unknown): number {
  if (a === b) return 0;
  if (a === null || a === undefined) return -1;
  if (b === null || b === undefined) return 1;
  if (typeof a === "string" && typeof b === "string") {
    const da = /^\d{4}-\d{2}-\d{2}T/.test(a) ? instant(a) : NaN;
    const db = /^\d{4}-\d{2}-\d{2}T/.test(b) ? instant(b) : NaN;
    if (!Number.isNaN(da) && !Number.isNaN(db)) return da - db;
    return a < b ? -1 : a > b ? 1 : 0;
  }
  return (a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : 0;
}

function instant(s: string): number {
  return Date.parse(s.replace(/([+-]\d{2})(\d{2})$/, "$1:$2"));
}

/** Salesforce's dateTime format in REST responses. */
export function sfNow(ms = Date.now()): string {
  return new Date(ms).toISOString().replace("Z", "+0000");
}

function unxml(s: string): string {
  return s
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, "&");
}

/** A stable order unrelated to the id (a digest), like the chunk order of a Bulk job. */
function hash(s: string): number {
  return createHash("md5").update(s).digest().readUInt32BE(0);
}
