/**
 * A local Zoho CRM for tests: the accounts server's token endpoints and the CRM v7
 * endpoints nodes/lib/crm/zoho.ts uses, with their documented shapes, and controls
 * to expire tokens, refuse refreshed ones, rotate refresh tokens and answer 429.
 * Accounts and API share one origin here (the real ones are accounts.zoho.<dc> and
 * www.zohoapis.<dc>); api_domain in token responses points at this origin.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { createHash, randomBytes } from "node:crypto";
import { createFakeApp, listenLocal, rawBody, sendRaw } from "./fastify-app";

export type ZohoValue = string | number | boolean | null | { name: string; id: string };
export type ZohoRecord = Record<string, ZohoValue>;

export interface ZohoFieldMeta {
  api_name: string;
  data_type?: string;
  /** "Do not allow duplicate values" */
  unique?: boolean;
  required?: boolean;
}

interface Module {
  api_name: string;
  plural_label: string;
  singular_label: string;
  fields: ZohoFieldMeta[];
  records: Map<string, ZohoRecord>;
  /** System-defined duplicate check field (Email for Contacts and Leads). */
  duplicateCheck: string;
}

export interface ZohoLogEntry {
  method: string;
  path: string;
  status: number;
  query: Record<string, string>;
  ifModifiedSince?: string;
}

/** Zoho writes date-times in the user's time zone; this fake's user is in IST (+05:30). */
export function zohoTime(ms: number): string {
  const ist = new Date(ms + 5.5 * 3600_000).toISOString().replace(/\.\d{3}Z$/, "");
  return `${ist}+05:30`;
}

export class FakeZoho {
  clientId = "1000.FAKECLIENTID";
  clientSecret = "zoho-client-secret-9876";
  readonly refreshTokens = new Set<string>(["1000.refresh.initial"]);
  readonly accessTokens = new Map<string, { valid: boolean }>();
  /** Send a new refresh token with each refresh (and retire the old one). */
  rotateRefreshTokens = false;
  /** Every API call answers 401, even with a fresh token. */
  refuseAllTokens = false;
  /** The next n API calls answer 429 with these headers. */
  throttle: { remaining: number; headers: Record<string, string> } = { remaining: 0, headers: {} };
  readonly log: ZohoLogEntry[] = [];
  readonly refreshes: string[] = [];
  readonly revoked: string[] = [];
  readonly modules = new Map<string, Module>();
  private seq = 4150868000000224000n;
  private app: FastifyInstance | null = null;
  url = "";

  constructor() {
    this.defineModule("Contacts", "Contacts", "Contact", "Email", [
      { api_name: "First_Name" },
      { api_name: "Last_Name", required: true },
      { api_name: "Email", data_type: "email" },
      { api_name: "External_Id", unique: true },
      { api_name: "Score", data_type: "integer" },
    ]);
    this.defineModule("Leads", "Leads", "Lead", "Email", [
      { api_name: "Last_Name", required: true },
      { api_name: "Email", data_type: "email" },
    ]);
  }

  defineModule(
    api_name: string,
    plural: string,
    singular: string,
    duplicateCheck: string,
    fields: ZohoFieldMeta[],
  ): void {
    const system: ZohoFieldMeta[] = [
      { api_name: "Modified_Time", data_type: "datetime" },
      { api_name: "Created_Time", data_type: "datetime" },
    ];
    this.modules.set(api_name, {
      api_name,
      plural_label: plural,
      singular_label: singular,
      duplicateCheck,
      fields: [...system, ...fields],
      records: new Map(),
    });
  }

  newId(): string {
    this.seq += 1n;
    return String(this.seq);
  }

  insert(module: string, record: ZohoRecord): ZohoRecord {
    const id = typeof record.id === "string" ? record.id : this.newId();
    const now = zohoTime(Date.now());
    const full: ZohoRecord = { Modified_Time: now, Created_Time: now, ...record, id };
    this.modules.get(module)!.records.set(id, full);
    return full;
  }

  expireTokens(): void {
    for (const t of this.accessTokens.values()) t.valid = false;
  }

  count(pathPrefix: string): number {
    return this.log.filter((e) => e.path.startsWith(pathPrefix)).length;
  }

  async start(): Promise<string> {
    const app = createFakeApp((req, res) =>
      this.handle(req, res).catch((err: unknown) => {
        this.reply(req, res, 500, {
          code: "INTERNAL_ERROR",
          message: String(err),
          status: "error",
        });
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

  private reply(
    req: FastifyRequest,
    res: FastifyReply,
    status: number,
    body?: unknown,
    headers: Record<string, string> = {},
  ): void {
    const url = new URL(req.url ?? "/", this.url || "http://x");
    this.log.push({
      method: req.method ?? "",
      path: url.pathname,
      status,
      query: Object.fromEntries(url.searchParams),
      ifModifiedSince: req.headers["if-modified-since"] as string | undefined,
    });
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
    const method = req.method ?? "GET";
    if (method === "POST" && url.pathname === "/oauth/v2/token") return this.token(req, res, url);
    if (method === "POST" && url.pathname === "/oauth/v2/token/revoke")
      return this.revoke(req, res, url);

    const token = /^Zoho-oauthtoken (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    const known = token ? this.accessTokens.get(token) : undefined;
    if (!known || !known.valid || this.refuseAllTokens) {
      // https://www.zoho.com/crm/developer/docs/api/v7/status-codes.html (401 INVALID_TOKEN)
      return this.reply(req, res, 401, {
        code: "INVALID_TOKEN",
        details: {},
        message: "invalid oauth token",
        status: "error",
      });
    }
    if (this.throttle.remaining > 0) {
      this.throttle.remaining--;
      // https://www.zoho.com/crm/developer/docs/api/v7/api-limits.html (429 TOO_MANY_REQUESTS)
      return this.reply(
        req,
        res,
        429,
        {
          code: "TOO_MANY_REQUESTS",
          details: {},
          message: "The number of requests exceeds the limit.",
          status: "error",
        },
        this.throttle.headers,
      );
    }
    const m = /^\/crm\/v7(\/.*)$/.exec(url.pathname);
    if (!m)
      return this.reply(req, res, 404, {
        code: "INVALID_URL_PATTERN",
        details: {},
        message: "Please check if the URL trying to access is a correct one",
        status: "error",
      });
    const path = m[1];
    if (method === "GET" && path === "/users") return this.users(req, res, url);
    if (method === "GET" && path === "/org") return this.org(req, res);
    if (method === "GET" && path === "/settings/modules") return this.listModules(req, res);
    if (method === "GET" && path === "/settings/fields") return this.fields(req, res, url);
    const upsert = /^\/([A-Za-z_]+)\/upsert$/.exec(path);
    if (method === "POST" && upsert) return this.upsert(req, res, upsert[1]);
    const list = /^\/([A-Za-z_]+)$/.exec(path);
    if (method === "GET" && list) return this.records(req, res, url, list[1]);
    return this.reply(req, res, 404, {
      code: "INVALID_URL_PATTERN",
      details: {},
      message: "Please check if the URL trying to access is a correct one",
      status: "error",
    });
  }

  // ---- accounts server ------------------------------------------------------

  /** Refresh-token grant: https://www.zoho.com/crm/developer/docs/api/v7/refresh.html (form body or query string: https://www.zoho.com/accounts/protocol/oauth/web-apps/access-token-expiry.html) */
  private async token(req: FastifyRequest, res: FastifyReply, url: URL): Promise<void> {
    const form = new URLSearchParams(await this.body(req));
    const get = (k: string) => form.get(k) ?? url.searchParams.get(k);
    if (get("grant_type") !== "refresh_token")
      return this.reply(req, res, 200, { error: "unsupported_grant_type" });
    if (get("client_id") !== this.clientId || get("client_secret") !== this.clientSecret) {
      return this.reply(req, res, 200, { error: "invalid_client" });
    }
    const rt = get("refresh_token") ?? "";
    // Zoho answers an unknown or revoked refresh token with 200 and an error field.
    if (!this.refreshTokens.has(rt)) return this.reply(req, res, 200, { error: "invalid_code" });
    this.refreshes.push(rt);
    const access = `1000.${randomBytes(16).toString("hex")}.${randomBytes(16).toString("hex")}`;
    this.accessTokens.set(access, { valid: true });
    const body: Record<string, unknown> = {
      access_token: access,
      scope: "ZohoCRM.modules.ALL ZohoCRM.settings.ALL",
      api_domain: this.url,
      token_type: "Bearer",
      expires_in: 3600,
    };
    if (this.rotateRefreshTokens) {
      this.refreshTokens.delete(rt);
      const next = `1000.refresh.${randomBytes(8).toString("hex")}`;
      this.refreshTokens.add(next);
      body.refresh_token = next;
    }
    return this.reply(req, res, 200, body);
  }

  /** https://www.zoho.com/crm/developer/docs/api/v7/revoke-tokens.html */
  private async revoke(req: FastifyRequest, res: FastifyReply, url: URL): Promise<void> {
    const token =
      new URLSearchParams(await this.body(req)).get("token") ?? url.searchParams.get("token") ?? "";
    if (!this.refreshTokens.delete(token))
      return this.reply(req, res, 400, { error: "invalid_token" });
    this.revoked.push(token);
    return this.reply(req, res, 200, { status: "success" });
  }

  // ---- metadata -------------------------------------------------------------

  /** https://www.zoho.com/crm/developer/docs/api/v7/get-users.html */
  private users(req: FastifyRequest, res: FastifyReply, url: URL): void {
    if (url.searchParams.get("type") !== "CurrentUser")
      return this.reply(req, res, 400, {
        code: "INVALID_DATA",
        details: {},
        message: "the fake knows CurrentUser only",
        status: "error",
      });
    return this.reply(req, res, 200, {
      users: [
        {
          id: "4150868000000225013",
          full_name: "Ana Lyst",
          email: "ana@example.com",
          status: "active",
          role: { name: "CEO", id: "1" },
        },
      ],
      info: { per_page: 200, count: 1, page: 1, more_records: false },
    });
  }

  /** https://www.zoho.com/crm/developer/docs/api/v7/get-org-data.html */
  private org(req: FastifyRequest, res: FastifyReply): void {
    return this.reply(req, res, 200, {
      org: [
        {
          id: "4150868000000225001",
          company_name: "Zylker Test",
          domain_name: "org123",
          time_zone: "Asia/Kolkata",
        },
      ],
    });
  }

  /** https://www.zoho.com/crm/developer/docs/api/v7/modules-api.html */
  private listModules(req: FastifyRequest, res: FastifyReply): void {
    return this.reply(req, res, 200, {
      modules: [
        ...[...this.modules.values()].map((m) => ({
          api_name: m.api_name,
          module_name: m.api_name,
          plural_label: m.plural_label,
          singular_label: m.singular_label,
          api_supported: true,
          id: "1",
        })),
        {
          api_name: "Home",
          module_name: "Home",
          plural_label: "Home",
          singular_label: "Home",
          api_supported: false,
          id: "2",
        },
      ],
    });
  }

  /** https://www.zoho.com/crm/developer/docs/api/v7/field-meta.html */
  private fields(req: FastifyRequest, res: FastifyReply, url: URL): void {
    const m = this.modules.get(url.searchParams.get("module") ?? "");
    if (!m)
      return this.reply(req, res, 400, {
        code: "INVALID_MODULE",
        details: { resource_path_index: 0 },
        message: "the module name given seems to be invalid",
        status: "error",
      });
    return this.reply(req, res, 200, {
      fields: m.fields.map((f) => ({
        api_name: f.api_name,
        field_label: f.api_name.replace(/_/g, " "),
        display_label: f.api_name.replace(/_/g, " "),
        data_type: f.data_type ?? "text",
        system_mandatory: f.required === true,
        ...(f.unique ? { unique: { casesensitive: false } } : {}),
      })),
    });
  }

  // ---- records --------------------------------------------------------------

  /** https://www.zoho.com/crm/developer/docs/api/v7/get-records.html */
  private records(req: FastifyRequest, res: FastifyReply, url: URL, name: string): void {
    const m = this.modules.get(name);
    if (!m)
      return this.reply(req, res, 400, {
        code: "INVALID_MODULE",
        details: { resource_path_index: 0 },
        message: "the module name given seems to be invalid",
        status: "error",
      });
    const q = url.searchParams;
    const fields = q.get("fields");
    if (!fields)
      return this.reply(req, res, 400, {
        code: "REQUIRED_PARAM_MISSING",
        details: { param: "fields" },
        message: "One of the expected parameter is missing",
        status: "error",
      });
    const perPage = Number(q.get("per_page") ?? "200");
    if (perPage > 200)
      return this.reply(req, res, 400, {
        code: "INVALID_DATA",
        details: { param: "per_page", maximum_length: 200 },
        message: "invalid data",
        status: "error",
      });
    const sortBy = q.get("sort_by") ?? "id";
    if (!["id", "Created_Time", "Modified_Time"].includes(sortBy)) {
      return this.reply(req, res, 400, {
        code: "INVALID_DATA",
        details: { param: "sort_by" },
        message: "invalid data",
        status: "error",
      });
    }
    const desc = q.get("sort_order") === "desc";
    const since = req.headers["if-modified-since"] as string | undefined;
    let rows = [...m.records.values()];
    // Records modified after the header's time.
    if (since) rows = rows.filter((r) => Date.parse(String(r.Modified_Time)) > Date.parse(since));
    rows.sort((a, b) => {
      const c =
        sortBy === "id"
          ? cmpBig(String(a.id), String(b.id))
          : Date.parse(String(a[sortBy])) - Date.parse(String(b[sortBy])) ||
            // Ties on the sort field come in no id order (as in Zoho): order them by a hash.
            scramble(String(a.id)) - scramble(String(b.id));
      return desc ? -c : c;
    });
    let offset: number;
    const token = q.get("page_token");
    if (token) {
      offset = Number(Buffer.from(token, "base64url").toString());
    } else {
      const page = Number(q.get("page") ?? "1");
      offset = (page - 1) * perPage;
      // Without a page token, only the first 2,000 records can be reached.
      if (offset + perPage > 2000) {
        return this.reply(req, res, 400, {
          code: "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
          details: {},
          message: "cannot fetch more than 2000 records without page_token",
          status: "error",
        });
      }
    }
    const slice = rows.slice(offset, offset + perPage);
    if (!slice.length) return this.reply(req, res, 204);
    const names = ["id", ...fields.split(",")];
    const more = offset + slice.length < rows.length;
    return this.reply(req, res, 200, {
      data: slice.map((r) => Object.fromEntries(names.map((n) => [n, r[n] ?? null]))),
      info: {
        per_page: perPage,
        count: slice.length,
        page: Math.floor(offset / perPage) + 1,
        sort_by: sortBy,
        sort_order: desc ? "desc" : "asc",
        more_records: more,
        next_page_token: more
          ? Buffer.from(String(offset + slice.length)).toString("base64url")
          : null,
        previous_page_token: null,
        page_token_expiry: more ? new Date(Date.now() + 86_400_000).toISOString() : null,
      },
    });
  }

  /** https://www.zoho.com/crm/developer/docs/api/v7/upsert-records.html */
  private async upsert(req: FastifyRequest, res: FastifyReply, name: string): Promise<void> {
    const m = this.modules.get(name);
    if (!m)
      return this.reply(req, res, 400, {
        code: "INVALID_MODULE",
        details: {},
        message: "the module name given seems to be invalid",
        status: "error",
      });
    const body = JSON.parse(await this.body(req)) as {
      data?: ZohoRecord[];
      duplicate_check_fields?: string[];
    };
    const data = body.data ?? [];
    if (data.length > 100)
      return this.reply(req, res, 400, {
        code: "LIMIT_EXCEEDED",
        details: { limit: 100 },
        message: "the number of records exceeds the limit",
        status: "error",
      });
    const checks = body.duplicate_check_fields ?? [
      m.duplicateCheck,
      ...m.fields.filter((f) => f.unique).map((f) => f.api_name),
    ];
    const results = data.map((input) => {
      for (const k of Object.keys(input)) {
        if (k !== "id" && !m.fields.some((f) => f.api_name === k)) {
          return {
            code: "INVALID_DATA",
            details: { api_name: k },
            message: "invalid field",
            status: "error",
          };
        }
      }
      if (typeof input.Email === "string" && !/^[^@\s]+@[^@\s]+$/.test(input.Email)) {
        return {
          code: "INVALID_DATA",
          details: { api_name: "Email", expected_data_type: "email" },
          message: "invalid data",
          status: "error",
        };
      }
      let existing: ZohoRecord | undefined;
      let duplicateField: string | null = null;
      if (typeof input.id === "string") existing = m.records.get(input.id);
      for (const f of checks) {
        if (existing) break;
        const v = input[f];
        if (v === undefined || v === null || v === "") continue;
        existing = [...m.records.values()].find((r) => r[f] === v);
        if (existing) duplicateField = f;
      }
      const now = zohoTime(Date.now());
      if (existing) {
        Object.assign(existing, input, { id: existing.id, Modified_Time: now });
        return {
          code: "SUCCESS",
          duplicate_field: duplicateField,
          action: "update",
          details: { Modified_Time: now, id: existing.id },
          message: "record updated",
          status: "success",
        };
      }
      const missing = m.fields.find(
        (f) => f.required && (input[f.api_name] === undefined || input[f.api_name] === null),
      );
      if (missing)
        return {
          code: "MANDATORY_NOT_FOUND",
          details: { api_name: missing.api_name },
          message: "required field not found",
          status: "error",
        };
      const created = this.insert(name, { ...input });
      return {
        code: "SUCCESS",
        duplicate_field: null,
        action: "insert",
        details: { Modified_Time: created.Modified_Time, id: created.id },
        message: "record added",
        status: "success",
      };
    });
    const failed = results.filter((r) => r.status !== "success").length;
    const status = failed === 0 ? 200 : failed === results.length ? 400 : 207;
    return this.reply(req, res, status, { data: results });
  }
}

function cmpBig(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** A stable order unrelated to the id (a digest), as Zoho's order among ties is. */
function scramble(id: string): number {
  return createHash("md5").update(id).digest().readUInt32BE(0);
}
