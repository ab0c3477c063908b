/**
 * A local Pipedrive for tests: persons, organizations, deals and activities in
 * memory, following the documented shapes of the endpoints the provider uses (each
 * handler cites its page): API v2 lists with cursor pagination, `updated_since` and
 * `sort_by=update_time`; v1 search with `fields` and `exact_match`; v2 create
 * (POST) and update (PATCH); v1 field lists and users/me. Timestamps have whole
 * seconds, as Pipedrive's, so ties on update_time are common. 401 for a wrong or
 * expired token, 429 with Retry-After on demand.
 */
import { HttpFake, type FakeReply, type FakeRequest } from "./http-fake";

export type PipedriveRecord = Record<string, unknown> & {
  id: number;
  update_time: string;
  add_time: string;
};

const OBJECTS = ["persons", "organizations", "deals", "activities"] as const;

const FIELDS: Record<string, Array<{ key: string; name: string; field_type: string }>> = {
  personFields: [
    { key: "id", name: "ID", field_type: "int" },
    { key: "name", name: "Name", field_type: "varchar" },
    { key: "email", name: "Email", field_type: "varchar" },
    { key: "phone", name: "Phone", field_type: "phone" },
    { key: "org_id", name: "Organization", field_type: "org" },
    { key: "owner_id", name: "Owner", field_type: "user" },
    { key: "add_time", name: "Person created", field_type: "date" },
    { key: "update_time", name: "Update time", field_type: "date" },
  ],
  organizationFields: [
    { key: "id", name: "ID", field_type: "int" },
    { key: "name", name: "Name", field_type: "varchar" },
    { key: "address", name: "Address", field_type: "address" },
    { key: "update_time", name: "Update time", field_type: "date" },
  ],
  dealFields: [
    { key: "id", name: "ID", field_type: "int" },
    { key: "title", name: "Title", field_type: "varchar" },
    { key: "value", name: "Value", field_type: "monetary" },
    { key: "update_time", name: "Update time", field_type: "date" },
  ],
  activityFields: [
    { key: "id", name: "ID", field_type: "int" },
    { key: "subject", name: "Subject", field_type: "varchar" },
    { key: "type", name: "Type", field_type: "varchar" },
    { key: "update_time", name: "Update time", field_type: "date" },
  ],
};

/** Required on create, as Pipedrive validates them. */
const REQUIRED: Record<string, string> = {
  persons: "name",
  organizations: "name",
  deals: "title",
  activities: "subject",
};

function failure(status: number, error: string, info?: string): FakeReply {
  return {
    status,
    body: { success: false, error, ...(info ? { error_info: info } : {}), data: null },
  };
}

/** RFC 3339 with whole seconds, as API v2 returns. */
function stamp(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

export interface PipedriveFakeOptions {
  /** API token (x-api-token header or api_token parameter), or an OAuth access token (Bearer). */
  apiToken?: string;
}

export class PipedriveFake extends HttpFake {
  readonly objects: Record<string, Map<number, PipedriveRecord>> = {
    persons: new Map(),
    organizations: new Map(),
    deals: new Map(),
    activities: new Map(),
  };
  private nextId = 1;
  /** The fake's clock: every write happens "now"; tests move it. */
  clock = Date.parse("2026-03-01T09:00:00Z");
  private validTokens = new Set<string>();

  constructor(options: PipedriveFakeOptions = {}) {
    super();
    if (options.apiToken) this.validTokens.add(options.apiToken);
  }

  expireTokens(): void {
    this.validTokens.clear();
  }

  seed(
    object: string,
    records: Array<Record<string, unknown>>,
    at?: (i: number) => number,
  ): PipedriveRecord[] {
    return records.map((r, i) => {
      const when = stamp(at ? at(i) : this.clock);
      const id = this.nextId++;
      const record = { ...r, id, add_time: when, update_time: when } as PipedriveRecord;
      this.objects[object].set(id, record);
      return record;
    });
  }

  touch(object: string, id: number, changes: Record<string, unknown>, atMs?: number): void {
    const record = this.objects[object].get(id)!;
    Object.assign(record, changes, { update_time: stamp(atMs ?? this.clock) });
  }

  protected errorBody(status: number, message: string): unknown {
    return { success: false, error: message, data: null };
  }

  protected handle(req: FakeRequest): FakeReply {
    // https://pipedrive.readme.io/docs/core-api-concepts-authentication
    const auth = String(req.headers.authorization ?? "");
    const token =
      String(req.headers["x-api-token"] ?? "") ||
      req.query.get("api_token") ||
      (auth.startsWith("Bearer ") ? auth.slice(7) : "");
    if (!this.validTokens.has(token)) {
      return failure(
        401,
        "unauthorized access",
        "Please check the Pipedrive Developer documentation at https://pipedrive.readme.io/docs/core-api-concepts-authentication",
      );
    }
    const headers = { "x-ratelimit-remaining": "39", "x-daily-requests-left": "9990" };
    // https://developers.pipedrive.com/docs/api/v1/Users#getCurrentUser
    if (req.method === "GET" && req.path === "/api/v1/users/me") {
      return {
        status: 200,
        headers,
        body: {
          success: true,
          data: {
            id: 1,
            name: "Ana Analyst",
            email: "ana@example.com",
            company_name: "Example GmbH",
            company_domain: "example",
          },
        },
      };
    }
    // https://developers.pipedrive.com/docs/api/v1/PersonFields#getPersonFields
    const fields = req.path.match(
      /^\/api\/v1\/(personFields|organizationFields|dealFields|activityFields)$/,
    );
    if (req.method === "GET" && fields) {
      return {
        status: 200,
        body: {
          success: true,
          data: FIELDS[fields[1]],
          additional_data: {
            pagination: { start: 0, limit: 500, more_items_in_collection: false },
          },
        },
      };
    }
    // https://developers.pipedrive.com/docs/api/v1/Persons#searchPersons
    const search = req.path.match(/^\/api\/v1\/(persons|organizations|deals)\/search$/);
    if (req.method === "GET" && search) return this.search(search[1], req);
    const v2 = req.path.match(/^\/api\/v2\/([a-z]+)(?:\/(\d+))?$/);
    if (v2 && (OBJECTS as readonly string[]).includes(v2[1])) {
      const [, object, id] = v2;
      if (req.method === "GET" && !id) return this.list(object, req);
      if (req.method === "POST" && !id) return this.create(object, req);
      if (req.method === "PATCH" && id) return this.update(object, Number(id), req);
    }
    return failure(404, `Unknown method ${req.method} ${req.path}`);
  }

  /**
   * https://developers.pipedrive.com/docs/api/v1/Persons#getPersons (API v2):
   * updated_since (inclusive), sort_by id|update_time|add_time, sort_direction,
   * cursor (opaque) and limit (at most 500); additional_data.next_cursor.
   */
  private list(object: string, req: FakeRequest): FakeReply {
    const limit = Number(req.query.get("limit") ?? 100);
    if (limit > 500)
      return failure(400, "Validation failed: limit: Must be less than or equal to 500");
    const sortBy = req.query.get("sort_by") ?? "id";
    if (!["id", "update_time", "add_time"].includes(sortBy))
      return failure(400, `Validation failed: sort_by: Must be one of id, update_time, add_time`);
    const dir = req.query.get("sort_direction") === "desc" ? -1 : 1;
    const since = req.query.get("updated_since");
    if (since && !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/.test(since))
      return failure(400, "Validation failed: updated_since: Must be a RFC3339 datetime");
    const key = (r: PipedriveRecord): [number, number] => [
      sortBy === "id" ? r.id : Date.parse(String(r[sortBy])),
      r.id,
    ];
    let rows = [...this.objects[object].values()].filter(
      (r) => !since || Date.parse(r.update_time) >= Date.parse(since),
    );
    rows.sort((a, b) => {
      const [x1, x2] = key(a);
      const [y1, y2] = key(b);
      return dir * (x1 - y1 || x2 - y2);
    });
    // The cursor is a keyset marker: the sort key of the first record of the next page.
    const cursor = req.query.get("cursor");
    if (cursor) {
      const [c1, c2] = JSON.parse(Buffer.from(cursor, "base64url").toString()) as [number, number];
      rows = rows.filter((r) => {
        const [v1, v2] = key(r);
        return dir * (v1 - c1 || v2 - c2) >= 0;
      });
    }
    const page = rows.slice(0, limit);
    const next = rows[limit];
    return {
      status: 200,
      body: {
        success: true,
        data: page,
        additional_data: {
          next_cursor: next ? Buffer.from(JSON.stringify(key(next))).toString("base64url") : null,
        },
      },
    };
  }

  private fieldValues(record: PipedriveRecord, field: string): string[] {
    if (field === "email" || field === "phone") {
      const list = record[field === "email" ? "emails" : "phones"] as
        Array<{ value: string }> | undefined;
      return (list ?? []).map((e) => e.value);
    }
    if (field === "custom_fields") {
      return Object.values((record.custom_fields as Record<string, unknown>) ?? {}).map(String);
    }
    const v = record[field];
    return v === undefined || v === null ? [] : [String(v)];
  }

  private search(object: string, req: FakeRequest): FakeReply {
    const term = req.query.get("term") ?? "";
    const exact = req.query.get("exact_match") === "true";
    if (term.length < (exact ? 1 : 2))
      return failure(400, "Validation failed: term: Must be at least 2 characters long");
    const fields = (req.query.get("fields") ?? "name").split(",");
    const items = [...this.objects[object].values()]
      .filter((r) =>
        fields.some((f) =>
          this.fieldValues(r, f).some((v) =>
            exact
              ? v.toLowerCase() === term.toLowerCase()
              : v.toLowerCase().includes(term.toLowerCase()),
          ),
        ),
      )
      .map((r) => ({
        result_score: 1,
        item: { id: r.id, type: object.replace(/s$/, ""), name: r.name ?? r.title },
      }));
    return {
      status: 200,
      body: {
        success: true,
        data: { items },
        additional_data: { pagination: { start: 0, limit: 100, more_items_in_collection: false } },
      },
    };
  }

  private validate(
    object: string,
    body: Record<string, unknown>,
    creating: boolean,
  ): FakeReply | null {
    const required = REQUIRED[object];
    if (creating && (typeof body[required] !== "string" || body[required] === ""))
      return failure(400, `Validation failed: ${required}: Field is required`);
    const emails = body.emails as Array<{ value?: unknown }> | undefined;
    if (emails && !emails.every((e) => typeof e.value === "string"))
      return failure(
        400,
        "Validation failed: emails: Must be an array of { value, primary, label }",
      );
    if ("id" in body || "update_time" in body)
      return failure(400, "Validation failed: id, update_time: Read-only fields");
    return null;
  }

  /** https://developers.pipedrive.com/docs/api/v1/Persons#addPerson (API v2) */
  private create(object: string, req: FakeRequest): FakeReply {
    const body = req.body as Record<string, unknown>;
    const invalid = this.validate(object, body, true);
    if (invalid) return invalid;
    const [record] = this.seed(object, [body]);
    return { status: 200, body: { success: true, data: record } };
  }

  /** https://developers.pipedrive.com/docs/api/v1/Persons#updatePerson (API v2, PATCH) */
  private update(object: string, id: number, req: FakeRequest): FakeReply {
    const record = this.objects[object].get(id);
    if (!record) return failure(404, `${object.replace(/s$/, "")} not found`);
    const body = req.body as Record<string, unknown>;
    const invalid = this.validate(object, body, false);
    if (invalid) return invalid;
    this.touch(object, id, body);
    return { status: 200, body: { success: true, data: record } };
  }
}
