/**
 * Pipedrive (https://developers.pipedrive.com/docs/api/v1): persons, organizations,
 * deals and activities.
 *
 * Reads use API v2 lists, which page with an opaque cursor (a keyset at Pipedrive,
 * not an offset, so records changing during the run shift nothing).
 * Incremental: `updated_since` (inclusive) + `sort_by=update_time`; ties on
 * update_time (whole seconds) are common, so a page's records are released only once
 * a later update_time has been seen, sorted locally by (update_time, id), and those at
 * or before the watermark are dropped. A read continues the same cursor while the
 * reader asks for the position it was last given; otherwise it starts again from
 * `updated_since` = the watermark.
 *
 * Writes: search by the key field (v1 search, exact match), then create (POST v2) or
 * update (PATCH v2); key "id" updates by id.
 */
import { TributaryError } from "../db/errors";
import type { SyncRecord, Value } from "../types";
import { CrmHttp, OAuthSession, tokenOrOAuth, type TokenStore } from "./http";
import { compareIds, compareModified, comparePositions, isAfter, positionOf } from "./keyset";
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

export const PIPEDRIVE_BASE_URL = "https://api.pipedrive.com";
const OAUTH_URL = "https://oauth.pipedrive.com/oauth/token";
/** A read session unused this long is not continued (its run has ended). */
const SESSION_IDLE_MS = 60_000;
/** v2 lists return at most 500 per page. */
const PAGE = 500;

const OBJECTS: Record<string, { label: string; fields: string; search: string[] | null }> = {
  persons: {
    label: "Persons",
    fields: "personFields",
    search: ["custom_fields", "email", "notes", "phone", "name"],
  },
  organizations: {
    label: "Organizations",
    fields: "organizationFields",
    search: ["address", "custom_fields", "notes", "name"],
  },
  deals: { label: "Deals", fields: "dealFields", search: ["custom_fields", "notes", "title"] },
  // Activities have no search endpoint: they are matched by id only.
  activities: { label: "Activities", fields: "activityFields", search: null },
};

/** Fields of v2 records that the v1 field lists name differently. */
const V2_ALIASES: Record<string, string[]> = {
  persons: ["emails", "phones", "custom_fields"],
  organizations: ["custom_fields"],
  deals: ["custom_fields"],
  activities: [],
};

const READ_ONLY = new Set(["id", "add_time", "update_time"]);

interface Envelope<T> {
  success: boolean;
  data: T;
  additional_data?: { next_cursor?: string | null };
}

interface Session {
  object: string;
  mode: "full" | "incremental";
  fields: string;
  start: CrmPosition | null;
  /** The position last handed out: a read asking for it continues this session. */
  position: CrmPosition | null;
  cursor: string | null;
  buffer: SyncRecord[];
  lastSeen: string | null;
  done: boolean;
  usedAt: number;
}

function samePosition(a: CrmPosition | null, b: CrmPosition | null): boolean {
  if (a === null || b === null) return a === b;
  return a.modified === b.modified && a.id === b.id;
}

export class PipedriveProvider implements CrmProvider {
  readonly name = "pipedrive" as const;
  readonly http: CrmHttp;
  private readonly oauth: OAuthSession | null;
  private session: Session | null = null;
  private readonly baseUrl: string;

  constructor(
    private readonly settings: CrmSettings,
    store?: TokenStore,
  ) {
    this.baseUrl = (settings.baseUrl || PIPEDRIVE_BASE_URL).replace(/\/+$/, "");
    this.oauth = tokenOrOAuth(
      "Pipedrive",
      settings,
      store,
      (refreshToken) => this.exchange(refreshToken),
      {
        label: "token",
        help: "paste your Pipedrive API token (Personal preferences > API)",
      },
    );
    this.http = new CrmHttp({
      provider: "Pipedrive",
      baseUrl: this.baseUrl,
      maxConcurrency: settings.maxConcurrency,
      throttleMs: pipedriveThrottleMs,
      // The header rather than ?api_token=: a token in a URL ends up in proxy logs.
      authHeaders: async (): Promise<Record<string, string>> =>
        this.oauth
          ? { Authorization: `Bearer ${await this.oauth.accessToken()}` }
          : { "x-api-token": settings.token },
      refresh: this.oauth ? () => this.oauth!.refresh() : undefined,
      // OAuth apps must call the company's api_domain, which comes with the token;
      // an explicitly set base URL (a proxy, a test server) still wins.
      baseUrlOverride: () =>
        this.baseUrl === PIPEDRIVE_BASE_URL ? this.oauth?.instanceUrl : undefined,
      secrets: () => [settings.token, settings.clientSecret, ...(this.oauth?.secrets() ?? [])],
      errorMessage: (_status, body) => {
        const b = body as { error?: string; error_info?: string } | undefined;
        if (!b?.error) return undefined;
        return b.error_info ? `${b.error}; ${b.error_info}` : b.error;
      },
    });
  }

  idField(): string {
    return "id";
  }

  modifiedField(): string {
    return "update_time";
  }

  private objectInfo(object: string) {
    const info = OBJECTS[object];
    if (!info) {
      throw new TributaryError(
        "config",
        `Pipedrive object "${object}" is not supported: choose ${Object.keys(OBJECTS).join(", ")}`,
      );
    }
    return info;
  }

  /** https://pipedrive.readme.io/docs/marketplace-oauth-authorization#step-7-refreshing-the-tokens */
  private async exchange(refreshToken: string): Promise<CrmTokens> {
    const url = this.baseUrl === PIPEDRIVE_BASE_URL ? OAUTH_URL : `${this.baseUrl}/oauth/token`;
    const basic = Buffer.from(`${this.settings.clientId}:${this.settings.clientSecret}`).toString(
      "base64",
    );
    const data = await this.http.request<{
      access_token: string;
      refresh_token?: string;
      expires_in?: number;
      api_domain?: string;
    }>({
      method: "POST",
      url,
      data: new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: refreshToken,
      }).toString(),
      headers: {
        Authorization: `Basic ${basic}`,
        "Content-Type": "application/x-www-form-urlencoded",
      },
      noAuth: true,
      idempotent: true,
    });
    return {
      accessToken: data.access_token,
      refreshToken: data.refresh_token,
      expiresAt: data.expires_in ? Date.now() + data.expires_in * 1000 : undefined,
      ...(data.api_domain ? { instanceUrl: data.api_domain } : {}),
    };
  }

  async check(): Promise<ConnectionCheck> {
    // https://developers.pipedrive.com/docs/api/v1/Users#getCurrentUser
    const me = await this.http.send<
      Envelope<{ name?: string; email?: string; company_name?: string; company_domain?: string }>
    >({ method: "GET", url: "/api/v1/users/me" });
    const h = me.headers;
    const daily = h["x-daily-requests-left"];
    const burst = h["x-ratelimit-remaining"];
    const limits = [
      daily ? `daily requests ${Number(daily).toLocaleString("en-US")} left` : "",
      burst ? `${burst} left in the current window` : "",
    ].filter(Boolean);
    return {
      user: me.data.data.email ?? me.data.data.name ?? "?",
      org: `${me.data.data.company_name ?? "?"}${me.data.data.company_domain ? ` (${me.data.data.company_domain}.pipedrive.com)` : ""}`,
      ...(limits.length ? { limits: limits.join(", ") } : {}),
    };
  }

  async listObjects(): Promise<CrmObject[]> {
    return Object.entries(OBJECTS).map(([name, info]) => ({ name, label: info.label }));
  }

  async describe(object: string): Promise<CrmField[]> {
    const info = this.objectInfo(object);
    const fields: CrmField[] = [];
    for (let start = 0; ;) {
      // https://developers.pipedrive.com/docs/api/v1/PersonFields#getPersonFields
      const page = await this.http.request<{
        data: Array<{ key: string; name: string; field_type: string }> | null;
        additional_data?: {
          pagination?: { more_items_in_collection?: boolean; next_start?: number };
        };
      }>({ method: "GET", url: `/api/v1/${info.fields}`, params: { start, limit: 500 } });
      for (const f of page.data ?? [])
        fields.push({
          name: f.key,
          label: f.name,
          type: f.field_type,
          ...(f.key === "id" ? { unique: true } : {}),
        });
      const more = page.additional_data?.pagination;
      if (!more?.more_items_in_collection || more.next_start === undefined) break;
      start = more.next_start;
    }
    const names = new Set(fields.map((f) => f.name));
    for (const alias of [...V2_ALIASES[object], "id", "update_time"])
      if (!names.has(alias)) fields.push({ name: alias, label: alias, type: "v2" });
    return fields;
  }

  async read(request: ReadRequest): Promise<SyncRecord[]> {
    this.objectInfo(request.object);
    if (request.limit < 1) return [];
    const fieldsKey = request.fields.join(",");
    const incremental = request.mode === "incremental";
    let s = this.session;
    if (
      !s ||
      s.object !== request.object ||
      s.mode !== request.mode ||
      s.fields !== fieldsKey ||
      !samePosition(s.position, request.after) ||
      request.after === null ||
      // A finished or idle session belongs to an earlier run: start from the watermark.
      (s.done && s.buffer.length === 0) ||
      Date.now() - s.usedAt > SESSION_IDLE_MS
    ) {
      s = {
        object: request.object,
        mode: request.mode,
        fields: fieldsKey,
        start: request.after,
        position: request.after,
        cursor: null,
        buffer: [],
        lastSeen: null,
        done: false,
        usedAt: Date.now(),
      };
    }
    s.usedAt = Date.now();
    this.session = s;
    const pos = (r: SyncRecord) => positionOf(r, "id", "update_time");
    const out: SyncRecord[] = [];
    while (out.length < request.limit) {
      // Incremental: a record is complete once a later update_time was seen (or the end).
      const ready = s.buffer.filter(
        (r) => s.done || !incremental || compareModified(r.update_time, s.lastSeen) < 0,
      );
      if (ready.length) {
        ready.sort((a, b) =>
          incremental ? comparePositions(pos(a), pos(b)) : compareIds(a.id, b.id),
        );
        const take = ready.slice(0, request.limit - out.length);
        const taken = new Set(take);
        s.buffer = s.buffer.filter((r) => !taken.has(r));
        out.push(...take);
        continue;
      }
      if (s.done) break;
      const page = await this.listPage(request.object, s, incremental);
      const records = page.data ?? [];
      const start = s.start;
      s.buffer.push(
        ...records
          .map((r) => this.select(r, request.fields))
          .filter((r) =>
            incremental ? isAfter(pos(r), start) : start === null || compareIds(r.id, start.id) > 0,
          ),
      );
      if (records.length) s.lastSeen = String(records[records.length - 1].update_time ?? "");
      s.cursor = page.additional_data?.next_cursor ?? null;
      if (!s.cursor) s.done = true;
    }
    if (out.length) {
      const last = out[out.length - 1];
      s.position = incremental ? pos(last) : { modified: null, id: String(last.id) };
    }
    return out;
  }

  /** https://developers.pipedrive.com/docs/api/v1/Persons#getPersons (API v2 list) */
  private listPage(object: string, s: Session, incremental: boolean) {
    const params: Record<string, string | number> = {
      limit: PAGE,
      sort_by: incremental ? "update_time" : "id",
      sort_direction: "asc",
    };
    if (incremental && s.start?.modified) params.updated_since = rfc3339(s.start.modified);
    if (s.cursor) params.cursor = s.cursor;
    return this.http.request<Envelope<Array<Record<string, Value>> | null>>({
      method: "GET",
      url: `/api/v2/${object}`,
      params,
    });
  }

  /** v2 has no field selector: keep the chosen fields (and id, update_time) here. */
  private select(record: Record<string, Value>, fields: string[]): SyncRecord {
    if (fields.length === 0) return record;
    const out: SyncRecord = { id: record.id ?? null, update_time: record.update_time ?? null };
    for (const f of fields) if (f in record) out[f] = record[f];
    return out;
  }

  async upsert(object: string, keyField: string, records: SyncRecord[]): Promise<UpsertResult[]> {
    const info = this.objectInfo(object);
    if (keyField !== "id" && !info.search) {
      throw new TributaryError(
        "config",
        `Pipedrive ${object} cannot be searched by "${keyField}": use key column id`,
      );
    }
    // The connection's concurrency limit paces these; each record is its own call.
    return Promise.all(records.map((record) => this.upsertOne(object, keyField, record)));
  }

  private async upsertOne(
    object: string,
    keyField: string,
    record: SyncRecord,
  ): Promise<UpsertResult> {
    const keyValue = record[keyField];
    const key = [keyValue ?? null];
    try {
      if (keyField === "id") {
        await this.update(object, String(keyValue), record);
        return { key, action: "update" };
      }
      const matches = await this.searchIds(object, keyField, searchTerm(keyValue));
      if (matches.length > 1) {
        return {
          key,
          action: "failed",
          error: `${matches.length} Pipedrive ${object} have ${keyField} = ${searchTerm(keyValue)} (ids ${matches.join(", ")}): the key field must be unique; merge them or choose another key`,
        };
      }
      if (matches.length === 1) {
        await this.update(object, String(matches[0]), record);
        return { key, action: "update" };
      }
      // https://developers.pipedrive.com/docs/api/v1/Persons#addPerson (API v2)
      await this.http.request({
        method: "POST",
        url: `/api/v2/${object}`,
        data: body(object, record),
      });
      return { key, action: "insert" };
    } catch (err) {
      // A record Pipedrive refuses fails alone; anything else (auth, limits, outage)
      // fails the batch, so the run stops and its watermark stays before it.
      const code = (err as TributaryError).code;
      if (code === "rejected" || code === "not-found")
        return { key, action: "failed", error: (err as Error).message };
      throw err;
    }
  }

  /** https://developers.pipedrive.com/docs/api/v1/Persons#updatePerson (API v2, PATCH) */
  private async update(object: string, id: string, record: SyncRecord): Promise<void> {
    await this.http.request({
      method: "PATCH",
      url: `/api/v2/${object}/${encodeURIComponent(id)}`,
      data: body(object, record),
      idempotent: true,
    });
  }

  /** https://developers.pipedrive.com/docs/api/v1/Persons#searchPersons */
  private async searchIds(object: string, keyField: string, term: string): Promise<number[]> {
    const allowed = this.objectInfo(object).search ?? [];
    const field = allowed.includes(keyField) ? keyField : "custom_fields";
    const data = await this.http.request<
      Envelope<{ items: Array<{ result_score?: number; item: { id: number } }> }>
    >({
      method: "GET",
      url: `/api/v1/${object}/search`,
      params: { term, fields: field, exact_match: true, limit: 10 },
    });
    return (data.data?.items ?? []).map((i) => i.item.id);
  }
}

/** The text to search for: a person's email may come as v2's [{ value, primary }]. */
function searchTerm(value: Value | undefined): string {
  if (Array.isArray(value)) {
    const items = value as Array<{ [k: string]: Value }>;
    const primary = items.find((v) => v && v.primary === true) ?? items[0];
    return primary && typeof primary === "object" ? String(primary.value ?? "") : "";
  }
  return value === undefined || value === null ? "" : String(value);
}

/**
 * The v2 body: read-only fields dropped; a person's plain `email` / `phone` becomes
 * v2's `emails` / `phones` list, so a database row maps without a transform.
 */
function body(object: string, record: SyncRecord): Record<string, Value> {
  const out: Record<string, Value> = {};
  for (const [k, v] of Object.entries(record)) {
    if (READ_ONLY.has(k)) continue;
    if (object === "persons" && (k === "email" || k === "phone") && typeof v === "string") {
      const list = k === "email" ? "emails" : "phones";
      if (!(list in record)) out[list] = [{ value: v, primary: true, label: "work" }];
      continue;
    }
    out[k] = Buffer.isBuffer(v) ? v.toString("base64") : v;
  }
  return out;
}

/** Pipedrive v2 takes RFC 3339 without fractions in updated_since. */
function rfc3339(value: string): string {
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) {
    throw new TributaryError(
      "config",
      `Pipedrive: watermark "${value}" is not a timestamp: reset the source's watermark`,
    );
  }
  // Rounded down to the second: updated_since is inclusive, so nothing is skipped.
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

export function createPipedrive(settings: CrmSettings, store?: TokenStore): PipedriveProvider {
  return new PipedriveProvider(settings, store);
}

/**
 * Pipedrive's rate-limit headers (https://pipedrive.readme.io/docs/core-api-concepts-rate-limiting):
 * with no request left in the window, the next call waits until it resets.
 */
export function pipedriveThrottleMs(headers: Record<string, string>): number {
  if (headers["x-ratelimit-remaining"] !== "0") return 0;
  return (Number(headers["x-ratelimit-reset"]) || 2) * 1_000;
}
