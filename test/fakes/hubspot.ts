/**
 * A local HubSpot CRM v3 for tests: in-memory records of contacts, companies and
 * deals, following the documented request and response shapes of the endpoints the
 * provider uses (each handler cites its page), including the search endpoint's
 * 10,000-result cap and its arbitrary order of ties, 401 on an expired token,
 * rotated refresh tokens, and 429 with Retry-After on demand.
 */
import { HttpFake, type FakeReply, type FakeRequest } from "./http-fake";

export interface HubSpotRecord {
  id: number;
  properties: Record<string, string | null>;
  createdAt: string;
  updatedAt: string;
  archived: boolean;
}

interface PropertyDef {
  name: string;
  label: string;
  type: string;
  hasUniqueValue?: boolean;
}

const DATETIME = new Set(["createdate", "lastmodifieddate", "hs_lastmodifieddate"]);

const PROPERTIES: Record<string, PropertyDef[]> = {
  contacts: [
    { name: "email", label: "Email", type: "string" },
    { name: "firstname", label: "First Name", type: "string" },
    { name: "lastname", label: "Last Name", type: "string" },
    { name: "phone", label: "Phone Number", type: "string" },
    { name: "company", label: "Company Name", type: "string" },
    { name: "customer_id", label: "Customer id", type: "string", hasUniqueValue: true },
    { name: "createdate", label: "Create Date", type: "datetime" },
    { name: "lastmodifieddate", label: "Last Modified Date", type: "datetime" },
    { name: "hs_object_id", label: "Record ID", type: "number" },
  ],
  companies: [
    { name: "name", label: "Company name", type: "string" },
    { name: "domain", label: "Company Domain Name", type: "string" },
    { name: "createdate", label: "Create Date", type: "datetime" },
    { name: "hs_lastmodifieddate", label: "Last Modified Date", type: "datetime" },
    { name: "hs_object_id", label: "Record ID", type: "number" },
  ],
  deals: [
    { name: "dealname", label: "Deal Name", type: "string" },
    { name: "amount", label: "Amount", type: "number" },
    { name: "dealstage", label: "Deal Stage", type: "enumeration" },
    { name: "createdate", label: "Create Date", type: "datetime" },
    { name: "hs_lastmodifieddate", label: "Last Modified Date", type: "datetime" },
    { name: "hs_object_id", label: "Record ID", type: "number" },
  ],
};

const SEARCH_CAP = 10_000;

function modifiedField(object: string): string {
  return object === "contacts" ? "lastmodifieddate" : "hs_lastmodifieddate";
}

function error(status: number, category: string, message: string): FakeReply {
  return {
    status,
    body: { status: "error", message, correlationId: "fake-correlation", category },
  };
}

/** Epoch ms of a datetime filter value: HubSpot takes epoch ms or ISO 8601. */
function toMs(value: string | null | undefined): number {
  if (value === null || value === undefined || value === "") return NaN;
  return /^\d+$/.test(value) ? Number(value) : Date.parse(value);
}

/** A fixed, id-unrelated order for ties, as HubSpot gives no order within a tie. */
function scramble(id: number): number {
  return (id * 2654435761) % 4294967296;
}

export interface HubSpotFakeOptions {
  /** Private-app token accepted as a Bearer token. */
  token?: string;
  oauth?: {
    clientId: string;
    clientSecret: string;
    accessToken: string;
    refreshToken: string;
    /** Issue a new refresh token on each refresh and refuse the old one. */
    rotate?: boolean;
  };
}

export class HubSpotFake extends HttpFake {
  readonly objects: Record<string, Map<number, HubSpotRecord>> = {
    contacts: new Map(),
    companies: new Map(),
    deals: new Map(),
  };
  private nextId = 101;
  private lastMs = Date.parse("2026-01-01T00:00:00.000Z");
  private accessTokens = new Set<string>();
  private refreshToken: string | null = null;
  private issued = 0;
  /** Bearer tokens seen, to assert the refreshed one was used. */
  readonly dailyLimit = 250_000;

  constructor(private readonly options: HubSpotFakeOptions = {}) {
    super();
    if (options.token) this.accessTokens.add(options.token);
    if (options.oauth) {
      this.accessTokens.add(options.oauth.accessToken);
      this.refreshToken = options.oauth.refreshToken;
    }
  }

  /** The access token stops working (as after its 30 minutes). */
  expireAccessTokens(): void {
    this.accessTokens.clear();
  }

  get currentRefreshToken(): string | null {
    return this.refreshToken;
  }

  /** A timestamp later than every earlier one (ms precision, like HubSpot). */
  private now(): string {
    this.lastMs = Math.max(this.lastMs + 1, Date.now());
    return new Date(this.lastMs).toISOString();
  }

  /** Adds records directly; `modified` sets the last-modified value (for ties). */
  seed(
    object: string,
    records: Array<Record<string, string | null>>,
    modified?: string | ((i: number) => string),
  ): HubSpotRecord[] {
    const created: HubSpotRecord[] = [];
    records.forEach((props, i) => {
      const at = typeof modified === "function" ? modified(i) : (modified ?? this.now());
      this.lastMs = Math.max(this.lastMs, Date.parse(at));
      created.push(this.create(object, props, at));
    });
    return created;
  }

  /** Changes a record as a user in HubSpot would; returns its new modified value. */
  touch(object: string, id: number, props: Record<string, string | null>, at?: string): string {
    const record = this.objects[object].get(id)!;
    const when = at ?? this.now();
    Object.assign(record.properties, props, { [modifiedField(object)]: when });
    record.updatedAt = when;
    return when;
  }

  findBy(object: string, property: string, value: string): HubSpotRecord | undefined {
    for (const r of this.objects[object].values())
      if ((r.properties[property] ?? "").toLowerCase() === value.toLowerCase()) return r;
    return undefined;
  }

  private create(object: string, props: Record<string, string | null>, at: string): HubSpotRecord {
    const id = this.nextId++;
    const record: HubSpotRecord = {
      id,
      properties: {
        ...props,
        ...(props.email ? { email: props.email.toLowerCase() } : {}),
        hs_object_id: String(id),
        createdate: at,
        [modifiedField(object)]: at,
      },
      createdAt: at,
      updatedAt: at,
      archived: false,
    };
    this.objects[object].set(id, record);
    return record;
  }

  protected errorBody(status: number, message: string): unknown {
    return {
      status: "error",
      message,
      correlationId: "fake-correlation",
      category: status === 429 ? "RATE_LIMITS" : "INTERNAL_ERROR",
      ...(status === 429 ? { policyName: "TEN_SECONDLY_ROLLING" } : {}),
    };
  }

  protected handle(req: FakeRequest): FakeReply {
    // https://developers.hubspot.com/docs/api/oauth/refresh-access-token
    if (req.method === "POST" && req.path === "/oauth/v1/token") return this.token(req);
    const auth = String(req.headers.authorization ?? "");
    const bearer = auth.startsWith("Bearer ") ? auth.slice(7) : "";
    if (!this.accessTokens.has(bearer)) {
      return error(
        401,
        "INVALID_AUTHENTICATION",
        "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
      );
    }
    const limits = {
      "X-HubSpot-RateLimit-Daily": String(this.dailyLimit),
      "X-HubSpot-RateLimit-Daily-Remaining": String(this.dailyLimit - this.log.length),
    };
    // https://developers.hubspot.com/docs/api/settings/account-information-api
    if (req.method === "GET" && req.path === "/account-info/v3/details") {
      return {
        status: 200,
        headers: limits,
        body: {
          portalId: 62515,
          accountType: "STANDARD",
          timeZone: "Europe/Berlin",
          companyCurrency: "EUR",
          additionalCurrencies: [],
          utcOffset: "+01:00",
          utcOffsetMilliseconds: 3600000,
          uiDomain: "app-eu1.hubspot.com",
          dataHostingLocation: "eu1",
        },
      };
    }
    // https://developers.hubspot.com/docs/api/oauth/tokens (access token metadata)
    const tokenInfo = req.path.match(/^\/oauth\/v1\/access-tokens\/(.+)$/);
    if (req.method === "GET" && tokenInfo) {
      return {
        status: 200,
        body: {
          token: decodeURIComponent(tokenInfo[1]),
          user: "analyst@example.com",
          hub_domain: "example.com",
          hub_id: 62515,
          app_id: 456,
          expires_in: 1800,
          user_id: 789,
          token_type: "access",
          scopes: ["crm.objects.contacts.read", "crm.objects.contacts.write"],
        },
      };
    }
    // https://developers.hubspot.com/docs/api/crm/crm-custom-objects (GET /crm/v3/schemas)
    if (req.method === "GET" && req.path === "/crm/v3/schemas") {
      return {
        status: 200,
        body: {
          results: [
            {
              id: "123",
              name: "cars",
              objectTypeId: "2-123456",
              fullyQualifiedName: "p62515_cars",
              labels: { singular: "Car", plural: "Cars" },
              properties: [],
            },
          ],
        },
      };
    }
    // https://developers.hubspot.com/docs/api/crm/properties (GET /crm/v3/properties/{objectType})
    const props = req.path.match(/^\/crm\/v3\/properties\/([^/]+)$/);
    if (req.method === "GET" && props) {
      const defs = PROPERTIES[props[1]];
      if (!defs)
        return error(404, "OBJECT_NOT_FOUND", `Unable to infer object type from: ${props[1]}`);
      return { status: 200, body: { results: defs.map((d) => ({ ...d, fieldType: "text" })) } };
    }
    const objectPath = req.path.match(/^\/crm\/v3\/objects\/([^/]+)(\/.*)?$/);
    if (objectPath) {
      const [, object, rest = ""] = objectPath;
      if (!this.objects[object])
        return error(400, "VALIDATION_ERROR", `Unable to infer object type from: ${object}`);
      if (req.method === "POST" && rest === "/search") return this.search(object, req);
      if (req.method === "GET" && rest === "") return this.list(object, req);
      if (req.method === "POST" && rest === "/batch/upsert") return this.batchUpsert(object, req);
      if (req.method === "POST" && rest === "/batch/update") return this.batchUpdate(object, req);
    }
    return error(404, "OBJECT_NOT_FOUND", `no route ${req.method} ${req.path}`);
  }

  private token(req: FakeRequest): FakeReply {
    const body = req.body as Record<string, string>;
    const oauth = this.options.oauth;
    if (!oauth || body.client_id !== oauth.clientId || body.client_secret !== oauth.clientSecret)
      return {
        status: 400,
        body: { status: "BAD_CLIENT_ID", message: "missing or unknown client id" },
      };
    if (body.grant_type !== "refresh_token" || body.refresh_token !== this.refreshToken) {
      return {
        status: 400,
        body: { status: "BAD_REFRESH_TOKEN", message: "missing or unknown refresh token" },
      };
    }
    this.issued += 1;
    const access = `hs-access-${this.issued}-${Math.random().toString(36).slice(2)}`;
    this.accessTokens.add(access);
    if (oauth.rotate) this.refreshToken = `hs-refresh-${this.issued}`;
    return {
      status: 200,
      body: {
        token_type: "bearer",
        refresh_token: this.refreshToken,
        access_token: access,
        expires_in: 1800,
      },
    };
  }

  private project(object: string, record: HubSpotRecord, properties: string[] | null) {
    const names = properties ?? [
      "createdate",
      modifiedField(object),
      "hs_object_id",
      ...(object === "contacts" ? ["email", "firstname", "lastname"] : ["name"]),
    ];
    const out: Record<string, string | null> = {};
    for (const n of names) out[n] = record.properties[n] ?? null;
    return {
      id: String(record.id),
      properties: out,
      createdAt: record.createdAt,
      updatedAt: record.updatedAt,
      archived: record.archived,
    };
  }

  /** https://developers.hubspot.com/docs/api/crm/search */
  private search(object: string, req: FakeRequest): FakeReply {
    const body = req.body as {
      filterGroups?: Array<{
        filters: Array<{ propertyName: string; operator: string; value?: string }>;
      }>;
      sorts?: Array<{ propertyName: string; direction: string }>;
      properties?: string[];
      limit?: number;
      after?: string | number;
    };
    const limit = body.limit ?? 10;
    if (limit > 200) return error(400, "VALIDATION_ERROR", "limit must be at most 200");
    if ((body.sorts ?? []).length > 1)
      return error(400, "VALIDATION_ERROR", "only one sort is supported");
    const offset = Number(body.after ?? 0);
    if (offset + limit > SEARCH_CAP) {
      return error(
        400,
        "VALIDATION_ERROR",
        "There was a problem with the request: paging beyond 10000 results is not supported",
      );
    }
    const groups = body.filterGroups ?? [];
    let rows = [...this.objects[object].values()].filter(
      (r) =>
        groups.length === 0 ||
        groups.some((g) =>
          g.filters.every((f) => this.matches(r, f.propertyName, f.operator, f.value)),
        ),
    );
    const sort = body.sorts?.[0];
    if (sort) {
      const dir = sort.direction === "DESCENDING" ? -1 : 1;
      rows.sort(
        (a, b) =>
          dir * this.compareProperty(sort.propertyName, a, b) || scramble(a.id) - scramble(b.id),
      );
    } else {
      rows.sort((a, b) => a.id - b.id);
    }
    const total = rows.length;
    rows = rows.slice(offset, offset + limit);
    const next = offset + limit < total ? String(offset + limit) : null;
    return {
      status: 200,
      body: {
        total,
        results: rows.map((r) => this.project(object, r, body.properties ?? null)),
        ...(next ? { paging: { next: { after: next } } } : {}),
      },
    };
  }

  private value(record: HubSpotRecord, property: string): string | null {
    return property === "hs_object_id" ? String(record.id) : (record.properties[property] ?? null);
  }

  private compareProperty(property: string, a: HubSpotRecord, b: HubSpotRecord): number {
    const x = this.value(a, property);
    const y = this.value(b, property);
    if (DATETIME.has(property)) return toMs(x) - toMs(y);
    if (property === "hs_object_id") return Number(x) - Number(y);
    return String(x ?? "").localeCompare(String(y ?? ""));
  }

  private matches(
    record: HubSpotRecord,
    property: string,
    operator: string,
    value?: string,
  ): boolean {
    const actual = this.value(record, property);
    if (operator === "HAS_PROPERTY") return actual !== null && actual !== "";
    if (actual === null || value === undefined) return false;
    let cmp: number;
    if (DATETIME.has(property)) cmp = toMs(actual) - toMs(value);
    else if (property === "hs_object_id") cmp = Number(actual) - Number(value);
    else cmp = actual.toLowerCase() === value.toLowerCase() ? 0 : actual < value ? -1 : 1;
    switch (operator) {
      case "EQ":
        return cmp === 0;
      case "NEQ":
        return cmp !== 0;
      case "GT":
        return cmp > 0;
      case "GTE":
        return cmp >= 0;
      case "LT":
        return cmp < 0;
      case "LTE":
        return cmp <= 0;
      default:
        return false;
    }
  }

  /** https://developers.hubspot.com/docs/api/crm/contacts (GET /crm/v3/objects/contacts) */
  private list(object: string, req: FakeRequest): FakeReply {
    const limit = Math.min(Number(req.query.get("limit") ?? 10), 100);
    const after = Number(req.query.get("after") ?? 0);
    const properties = req.query.get("properties")?.split(",").filter(Boolean) ?? null;
    const rows = [...this.objects[object].values()]
      .filter((r) => r.id >= after && !r.archived)
      .sort((a, b) => a.id - b.id);
    const page = rows.slice(0, limit);
    const next = rows[limit];
    return {
      status: 200,
      body: {
        results: page.map((r) => this.project(object, r, properties)),
        ...(next
          ? {
              paging: {
                next: {
                  after: String(next.id),
                  link: `${this.url}/crm/v3/objects/${object}?after=${next.id}`,
                },
              },
            }
          : {}),
      },
    };
  }

  private unknownProperties(object: string, properties: Record<string, unknown>): string[] {
    const known = new Set(PROPERTIES[object].map((p) => p.name));
    return Object.keys(properties).filter((p) => !known.has(p));
  }

  /** https://developers.hubspot.com/docs/api/crm/contacts (POST batch/upsert) */
  private batchUpsert(object: string, req: FakeRequest): FakeReply {
    const inputs = (
      req.body as {
        inputs: Array<{ idProperty: string; id: string; properties: Record<string, string> }>;
      }
    ).inputs;
    if (inputs.length > 100) return error(400, "VALIDATION_ERROR", "at most 100 inputs per batch");
    const keys = inputs.map((i) => i.id.toLowerCase());
    if (new Set(keys).size !== keys.length)
      return error(400, "VALIDATION_ERROR", "Duplicate IDs found in batch input");
    for (const input of inputs) {
      const def = PROPERTIES[object].find((p) => p.name === input.idProperty);
      const unique = def?.hasUniqueValue || (object === "contacts" && input.idProperty === "email");
      if (!unique)
        return error(400, "VALIDATION_ERROR", `${input.idProperty} is not a unique property`);
      // One unknown property fails the whole batch, as HubSpot does.
      const unknown = this.unknownProperties(object, input.properties);
      if (unknown.length) {
        return error(
          400,
          "VALIDATION_ERROR",
          `Property values were not valid: [{"isValid":false,"message":"Property \\"${unknown[0]}\\" does not exist","error":"PROPERTY_DOESNT_EXIST","name":"${unknown[0]}"}]`,
        );
      }
    }
    const results: unknown[] = [];
    const errors: unknown[] = [];
    for (const input of inputs) {
      const email = input.idProperty === "email" ? input.id : input.properties.email;
      if (
        object === "contacts" &&
        email !== undefined &&
        email !== "" &&
        !/^[^@\s]+@[^@\s]+$/.test(email)
      ) {
        errors.push({
          status: "error",
          category: "VALIDATION_ERROR",
          message: `Property values were not valid: email "${email}" is not a valid email address`,
          context: { id: [input.id] },
        });
        continue;
      }
      const existing = this.findBy(object, input.idProperty, input.id);
      const at = this.now();
      let record: HubSpotRecord;
      let isNew = false;
      if (existing) {
        Object.assign(existing.properties, input.properties, { [modifiedField(object)]: at });
        if (existing.properties.email)
          existing.properties.email = existing.properties.email.toLowerCase();
        existing.updatedAt = at;
        record = existing;
      } else {
        record = this.create(object, { ...input.properties, [input.idProperty]: input.id }, at);
        isNew = true;
      }
      results.push({ ...this.project(object, record, Object.keys(record.properties)), new: isNew });
    }
    return {
      status: errors.length ? 207 : 200,
      body: {
        status: "COMPLETE",
        results,
        ...(errors.length ? { numErrors: errors.length, errors } : {}),
        startedAt: new Date().toISOString(),
        completedAt: new Date().toISOString(),
      },
    };
  }

  /** https://developers.hubspot.com/docs/api/crm/contacts (POST batch/update) */
  private batchUpdate(object: string, req: FakeRequest): FakeReply {
    const inputs = (
      req.body as { inputs: Array<{ id: string; properties: Record<string, string> }> }
    ).inputs;
    const results: unknown[] = [];
    const errors: unknown[] = [];
    for (const input of inputs) {
      const record = this.objects[object].get(Number(input.id));
      if (!record) {
        errors.push({
          status: "error",
          category: "OBJECT_NOT_FOUND",
          message: "Could not get some CONTACT objects, they may be deleted or not exist.",
          context: { ids: [input.id] },
        });
        continue;
      }
      this.touch(object, record.id, input.properties);
      results.push(this.project(object, record, Object.keys(record.properties)));
    }
    return {
      status: errors.length ? 207 : 200,
      body: {
        status: "COMPLETE",
        results,
        ...(errors.length ? { numErrors: errors.length, errors } : {}),
      },
    };
  }
}
