/**
 * HubSpot CRM v3 (https://developers.hubspot.com/docs/api/crm/understanding-the-crm).
 *
 * Incremental reads use the search endpoint, which pages by offset (`after`) and
 * refuses to go past 10,000 results. Offset paging also skips a record whenever one
 * already passed is modified during the run (everything after it shifts down by one),
 * so reads here never page by offset: each search is a keyset query, re-anchored on
 * the last modified value seen —
 *   `modified > m` sorted by modified, keeping only the records whose modified value
 *   is below the page's last one (those are complete); then the records at that last
 *   value, read by `modified = m and hs_object_id > id` sorted by id.
 * Ties of any size are read once each, no result count ever nears the cap, and a
 * record modified mid-run shows up again at its new position rather than hiding
 * another one.
 */
import { TributaryError } from "../db/errors";
import type { SyncRecord, Value } from "../types";
import { CrmHttp, OAuthSession, tokenOrOAuth, type TokenStore } from "./http";
import { compareIds, comparePositions, isAfter, positionOf } from "./keyset";
import type {
  ConnectionCheck,
  CrmField,
  CrmObject,
  CrmProvider,
  CrmSettings,
  CrmTokens,
  ReadRequest,
  UpsertResult,
} from "./provider";

export const HUBSPOT_BASE_URL = "https://api.hubapi.com";
/** Search returns at most 200 per page; the list endpoint 100. */
const SEARCH_PAGE = 200;
const LIST_PAGE = 100;
/** Batch upsert takes at most 100 inputs. */
export const HUBSPOT_BATCH = 100;

const STANDARD_OBJECTS: CrmObject[] = [
  { name: "contacts", label: "Contacts" },
  { name: "companies", label: "Companies" },
  { name: "deals", label: "Deals" },
  { name: "tickets", label: "Tickets" },
];

/** Properties HubSpot sets itself; writing them fails the record. */
const READ_ONLY = new Set([
  "id",
  "hs_object_id",
  "createdate",
  "lastmodifieddate",
  "hs_lastmodifieddate",
  "hs_createdate",
]);

interface HubSpotObject {
  id: string;
  properties: Record<string, string | null>;
  createdAt?: string;
  updatedAt?: string;
  archived?: boolean;
  new?: boolean;
}

interface Page {
  total?: number;
  results: HubSpotObject[];
  paging?: { next?: { after: string } };
}

interface BatchResponse {
  status?: string;
  results?: HubSpotObject[];
  errors?: Array<{
    status?: string;
    category?: string;
    message?: string;
    context?: Record<string, string[]>;
  }>;
}

interface Filter {
  propertyName: string;
  operator: "EQ" | "GT" | "GTE";
  value: string;
}

/** A full read under way: where the list endpoint continues. */
interface ListSession {
  object: string;
  fields: string;
  lastId: string | null;
  next: string | null;
  buffer: SyncRecord[];
  done: boolean;
}

export class HubSpotProvider implements CrmProvider {
  readonly name = "hubspot" as const;
  readonly http: CrmHttp;
  private readonly oauth: OAuthSession | null;
  private list: ListSession | null = null;

  constructor(
    private readonly settings: CrmSettings,
    store?: TokenStore,
  ) {
    const baseUrl = (settings.baseUrl || HUBSPOT_BASE_URL).replace(/\/+$/, "");
    this.oauth = tokenOrOAuth(
      "HubSpot",
      settings,
      store,
      (refreshToken) => this.exchange(refreshToken),
      {
        label: "token (private app)",
        help: "paste the HubSpot private app's access token (Settings > Integrations > Private apps)",
      },
    );
    this.http = new CrmHttp({
      provider: "HubSpot",
      baseUrl,
      maxConcurrency: settings.maxConcurrency,
      throttleMs: hubspotThrottleMs,
      authHeaders: async () => ({
        Authorization: `Bearer ${this.oauth ? await this.oauth.accessToken() : settings.token}`,
      }),
      refresh: this.oauth ? () => this.oauth!.refresh() : undefined,
      secrets: () => [
        settings.token,
        settings.clientSecret,
        settings.password,
        ...(this.oauth?.secrets() ?? []),
      ],
      errorMessage: (_status, body) => {
        const b = body as { message?: string; category?: string } | undefined;
        if (!b?.message) return undefined;
        return b.category ? `${b.category}: ${b.message}` : b.message;
      },
      // The daily limit resets at midnight: waiting seconds will not help.
      retryable: (status, body) =>
        !(status === 429 && (body as { policyName?: string } | undefined)?.policyName === "DAILY"),
    });
  }

  idField(): string {
    return "id";
  }

  modifiedField(object: string): string {
    return object.toLowerCase() === "contacts" ? "lastmodifieddate" : "hs_lastmodifieddate";
  }

  /** OAuth refresh (https://developers.hubspot.com/docs/api/oauth/refresh-access-token). */
  private async exchange(refreshToken: string): Promise<CrmTokens> {
    const body = new URLSearchParams({
      grant_type: "refresh_token",
      client_id: this.settings.clientId,
      client_secret: this.settings.clientSecret,
      refresh_token: refreshToken,
    });
    const data = await this.http.request<{
      access_token: string;
      refresh_token?: string;
      expires_in?: number;
    }>({
      method: "POST",
      url: "/oauth/v1/token",
      data: body.toString(),
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      noAuth: true,
      idempotent: true,
    });
    return {
      accessToken: data.access_token,
      refreshToken: data.refresh_token,
      expiresAt: data.expires_in ? Date.now() + data.expires_in * 1000 : undefined,
    };
  }

  async check(): Promise<ConnectionCheck> {
    const account = await this.http.send<{
      portalId?: number;
      uiDomain?: string;
      accountType?: string;
    }>({
      method: "GET",
      url: "/account-info/v3/details",
    });
    let user = "private app";
    if (this.oauth) {
      const token = await this.oauth.accessToken();
      const info = await this.http.request<{ user?: string; hub_domain?: string }>({
        method: "GET",
        url: `/oauth/v1/access-tokens/${encodeURIComponent(token)}`,
      });
      user = info.user ?? "oauth user";
    }
    const h = account.headers;
    const left = h["x-hubspot-ratelimit-daily-remaining"];
    const daily = h["x-hubspot-ratelimit-daily"];
    return {
      user,
      org: `portal ${account.data.portalId ?? "?"}${account.data.uiDomain ? ` (${account.data.uiDomain})` : ""}`,
      ...(left
        ? {
            limits: `daily API calls ${Number(left).toLocaleString("en-US")}${daily ? ` of ${Number(daily).toLocaleString("en-US")}` : ""} left`,
          }
        : {}),
    };
  }

  async listObjects(): Promise<CrmObject[]> {
    const schemas = await this.http.request<{
      results: Array<{
        objectTypeId: string;
        name: string;
        labels?: { singular?: string; plural?: string };
      }>;
    }>({ method: "GET", url: "/crm/v3/schemas" });
    const custom = schemas.results.map((s) => ({
      // The object type id works in every CRM path, whatever the portal calls the object.
      name: s.objectTypeId,
      label: s.labels?.plural ?? s.name,
    }));
    return [...STANDARD_OBJECTS, ...custom];
  }

  async describe(object: string): Promise<CrmField[]> {
    const data = await this.http.request<{
      results: Array<{ name: string; label: string; type: string; hasUniqueValue?: boolean }>;
    }>({ method: "GET", url: `/crm/v3/properties/${encodeURIComponent(object)}` });
    return data.results.map((p) => ({
      name: p.name,
      label: p.label,
      type: p.type,
      ...(p.hasUniqueValue ||
      p.name === "hs_object_id" ||
      (object === "contacts" && p.name === "email")
        ? { unique: true }
        : {}),
    }));
  }

  private properties(object: string, fields: string[]): string[] {
    const all = new Set(fields.filter((f) => f !== "id"));
    all.add(this.modifiedField(object));
    all.add("hs_object_id");
    return [...all];
  }

  /** `{ id, ...properties }`: HubSpot's values are text, kept as text (lossless). */
  private flatten(object: HubSpotObject): SyncRecord {
    const record: SyncRecord = { id: object.id };
    for (const [k, v] of Object.entries(object.properties ?? {})) record[k] = v;
    return record;
  }

  async read(request: ReadRequest): Promise<SyncRecord[]> {
    if (request.limit < 1) return [];
    return request.mode === "full" ? this.readFull(request) : this.readChanged(request);
  }

  private async search(
    object: string,
    properties: string[],
    filters: Filter[],
    sortBy: string,
    limit: number,
  ): Promise<SyncRecord[]> {
    // https://developers.hubspot.com/docs/api/crm/search
    const page = await this.http.request<Page>({
      method: "POST",
      url: `/crm/v3/objects/${encodeURIComponent(object)}/search`,
      data: {
        filterGroups: filters.length ? [{ filters }] : [],
        sorts: [{ propertyName: sortBy, direction: "ASCENDING" }],
        properties,
        limit,
      },
      idempotent: true,
    });
    return page.results.map((r) => this.flatten(r));
  }

  private async readChanged(request: ReadRequest): Promise<SyncRecord[]> {
    const { object, limit } = request;
    const modified = this.modifiedField(object);
    const properties = this.properties(object, request.fields);
    const pos = (r: SyncRecord) => positionOf(r, "id", modified);
    const sortRecords = (records: SyncRecord[]) =>
      records.sort((a, b) => comparePositions(pos(a), pos(b)));
    const out: SyncRecord[] = [];
    // The group of records sharing one modified value, read by id after `tieAfter`.
    let tie: { modified: string; after: string | null } | null = request.after?.modified
      ? { modified: request.after.modified, after: request.after.id }
      : null;
    let lower: string | null = request.after?.modified ?? null;
    while (out.length < limit) {
      if (tie) {
        const want = Math.min(SEARCH_PAGE, limit - out.length);
        const filters: Filter[] = [
          { propertyName: modified, operator: "EQ", value: epochMs(tie.modified, modified) },
        ];
        if (tie.after !== null)
          filters.push({ propertyName: "hs_object_id", operator: "GT", value: tie.after });
        const records = await this.search(object, properties, filters, "hs_object_id", want);
        // The id sort is numeric at HubSpot; keep the local order the same.
        records.sort((a, b) => compareIds(a.id, b.id));
        out.push(...records.filter((r) => isAfter(pos(r), request.after)));
        if (records.length < want) {
          lower = tie.modified;
          tie = null;
        } else {
          tie.after = String(records[records.length - 1].id);
        }
        continue;
      }
      const filters: Filter[] =
        lower === null
          ? []
          : [{ propertyName: modified, operator: "GT", value: epochMs(lower, modified) }];
      const records = await this.search(object, properties, filters, modified, SEARCH_PAGE);
      if (records.length === 0) break;
      sortRecords(records);
      if (records.length < SEARCH_PAGE) {
        // The last page: every group on it is complete.
        out.push(...records.slice(0, limit - out.length));
        break;
      }
      const last = records[records.length - 1][modified];
      const complete = records.filter(
        (r) =>
          comparePositions(
            { modified: String(r[modified]), id: null },
            { modified: String(last), id: null },
          ) < 0,
      );
      out.push(...complete.slice(0, limit - out.length));
      // The records at the page's last value may go on past the page: read them by id.
      tie = { modified: String(last), after: null };
    }
    return out.slice(0, limit);
  }

  private async readFull(request: ReadRequest): Promise<SyncRecord[]> {
    const { object, limit } = request;
    const properties = this.properties(object, request.fields);
    const key = properties.join(",");
    const afterId = request.after?.id ?? null;
    let session = this.list;
    if (
      !session ||
      session.object !== object ||
      session.fields !== key ||
      session.lastId !== afterId ||
      afterId === null
    ) {
      session = { object, fields: key, lastId: null, next: null, buffer: [], done: false };
    }
    this.list = session;
    while (session.buffer.length < limit && !session.done) {
      // https://developers.hubspot.com/docs/api/crm/contacts (GET /crm/v3/objects/{object})
      const page = await this.http.request<Page>({
        method: "GET",
        url: `/crm/v3/objects/${encodeURIComponent(object)}`,
        params: {
          limit: LIST_PAGE,
          properties: key,
          archived: false,
          ...(session.next ? { after: session.next } : {}),
        },
      });
      const records = page.results.map((r) => this.flatten(r));
      // A run resumed without its session skips what it already read (ids ascend).
      session.buffer.push(
        ...records.filter((r) => afterId === null || compareIds(r.id, afterId) > 0),
      );
      session.next = page.paging?.next?.after ?? null;
      if (!session.next) session.done = true;
    }
    const out = session.buffer.splice(0, limit);
    session.lastId = out.length ? String(out[out.length - 1].id) : session.lastId;
    return out;
  }

  async upsert(object: string, keyField: string, records: SyncRecord[]): Promise<UpsertResult[]> {
    const results: UpsertResult[] = [];
    for (let i = 0; i < records.length; i += HUBSPOT_BATCH) {
      const chunk = records.slice(i, i + HUBSPOT_BATCH);
      results.push(...(await this.writeIsolating(object, keyField, chunk)));
    }
    return results;
  }

  /**
   * HubSpot refuses a whole batch for one bad record (an unknown property, a value
   * of the wrong type) with a 400. Like the database writer, the batch is split in
   * halves until the records that fail alone are found; the others are written.
   * Other failures (auth, limits, outage) are not the records' fault and fail the batch.
   */
  private async writeIsolating(
    object: string,
    keyField: string,
    records: SyncRecord[],
  ): Promise<UpsertResult[]> {
    try {
      return keyField === "id" || keyField === "hs_object_id"
        ? await this.updateById(object, keyField, records)
        : await this.upsertByProperty(object, keyField, records);
    } catch (err) {
      if ((err as TributaryError).code !== "rejected") throw err;
      if (records.length === 1)
        return [{ key: [records[0][keyField]], action: "failed", error: (err as Error).message }];
      const middle = Math.ceil(records.length / 2);
      return [
        ...(await this.writeIsolating(object, keyField, records.slice(0, middle))),
        ...(await this.writeIsolating(object, keyField, records.slice(middle))),
      ];
    }
  }

  /** https://developers.hubspot.com/docs/api/crm/contacts (POST batch/upsert, idProperty) */
  private async upsertByProperty(
    object: string,
    keyField: string,
    records: SyncRecord[],
  ): Promise<UpsertResult[]> {
    const inputs = records.map((r) => ({
      idProperty: keyField,
      id: String(r[keyField]),
      properties: writable(r, keyField),
    }));
    const data = await this.http.request<BatchResponse>({
      method: "POST",
      url: `/crm/v3/objects/${encodeURIComponent(object)}/batch/upsert`,
      data: { inputs },
      idempotent: true,
    });
    // HubSpot may normalise the key (emails are lower-cased): match without case.
    const byKey = new Map<string, HubSpotObject>();
    for (const r of data.results ?? []) {
      const value = r.properties?.[keyField];
      if (value !== undefined && value !== null) byKey.set(value.toLowerCase(), r);
    }
    return records.map((record) => {
      const key = String(record[keyField]);
      const found = byKey.get(key.toLowerCase());
      if (found) return { key: [record[keyField]], action: found.new ? "insert" : "update" };
      return { key: [record[keyField]], action: "failed", error: errorFor(key, data) };
    });
  }

  /** Key "id": update existing records (https://developers.hubspot.com/docs/api/crm/contacts, batch/update). */
  private async updateById(
    object: string,
    keyField: string,
    records: SyncRecord[],
  ): Promise<UpsertResult[]> {
    const data = await this.http.request<BatchResponse>({
      method: "POST",
      url: `/crm/v3/objects/${encodeURIComponent(object)}/batch/update`,
      data: {
        inputs: records.map((r) => ({
          id: String(r[keyField]),
          properties: writable(r, keyField),
        })),
      },
      idempotent: true,
    });
    const done = new Set((data.results ?? []).map((r) => String(r.id)));
    return records.map((record) => {
      const key = String(record[keyField]);
      return done.has(key)
        ? { key: [record[keyField]], action: "update" as const }
        : { key: [record[keyField]], action: "failed" as const, error: errorFor(key, data) };
    });
  }
}

/** HubSpot takes text; null clears a property (as ""); objects go as JSON. */
function writable(record: SyncRecord, keyField: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(record)) {
    if (READ_ONLY.has(k) && k !== keyField) continue;
    out[k] = toText(v);
  }
  return out;
}

function toText(value: Value): string {
  if (value === null) return "";
  if (Buffer.isBuffer(value)) return value.toString("base64");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/** The batch error that names this key, else all of the batch's errors. */
function errorFor(key: string, data: BatchResponse): string {
  const errors = data.errors ?? [];
  const lower = key.toLowerCase();
  const mine = errors.find(
    (e) =>
      Object.values(e.context ?? {}).some((values) =>
        values.some((v) => String(v).toLowerCase() === lower),
      ) || (e.message ?? "").toLowerCase().includes(lower),
  );
  const chosen = mine ? [mine] : errors;
  if (chosen.length === 0) return "HubSpot returned no result for this record";
  return chosen.map((e) => `${e.category ?? "ERROR"}: ${e.message ?? "rejected"}`).join("; ");
}

/** HubSpot filters take datetimes as epoch milliseconds. */
function epochMs(value: string, field: string): string {
  if (/^\d+$/.test(value)) return value;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) {
    throw new TributaryError(
      "config",
      `HubSpot: watermark "${value}" of ${field} is not a timestamp: reset the source's watermark`,
    );
  }
  return String(ms);
}

export function createHubSpot(settings: CrmSettings, store?: TokenStore): HubSpotProvider {
  return new HubSpotProvider(settings, store);
}

/**
 * HubSpot's rate-limit headers (https://developers.hubspot.com/docs/api/usage-details):
 * with none left this second, or in the rolling interval, the next call waits for it.
 */
export function hubspotThrottleMs(headers: Record<string, string>): number {
  if (headers["x-hubspot-ratelimit-secondly-remaining"] === "0") return 1_000;
  if (headers["x-hubspot-ratelimit-remaining"] === "0")
    return Number(headers["x-hubspot-ratelimit-interval-milliseconds"]) || 10_000;
  return 0;
}
