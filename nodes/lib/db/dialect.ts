/**
 * What differs between database clients. Each dialect lives in one file beside this
 * one; everything else in nodes/lib/db is written once against this interface.
 */
import type { Knex } from "knex";
import type { SyncRecord, Value } from "../types";

export type ClientName = "pg" | "mysql" | "mssql" | "oracle" | "sqlite";

export const CLIENTS: ClientName[] = ["pg", "mysql", "mssql", "oracle", "sqlite"];

export interface ConnectionSettings {
  client: ClientName;
  host: string;
  port: number | null;
  database: string;
  filename: string;
  /** null: no TLS. verify: check the server certificate (against `ca` when given). */
  ssl: { verify: boolean; ca?: string } | null;
  poolMin: number;
  poolMax: number;
  poolIdleMs: number;
  /** 0: no limit. */
  statementTimeoutMs: number;
  user: string;
  password: string;
  connectTimeoutMs: number;
}

export interface ColumnInfo {
  name: string;
  /** The type as the database names it, lower case ("timestamp with time zone", "datetime"). */
  type: string;
  nullable: boolean;
}

export interface TableInfo {
  name: string;
  columns: ColumnInfo[];
}

export interface WriteChunk {
  table: string;
  columns: string[];
  key: string[];
  rows: unknown[][];
}

/** A batch for a bulk path: records as they arrive (the dialect converts the values
 *  itself, in one pass, rather than through an array per row). */
export interface BulkChunk {
  table: string;
  columns: ColumnInfo[];
  key: string[];
  records: SyncRecord[];
}

/** What a dialect's readRows learned about a select's columns on its first call, handed
 *  back to it on the next ones (the same select list, other bounds). */
export interface RowLayout {
  names: string[];
  /** Per column, what the driver would make of the value's text. */
  parsers: Array<(text: string) => unknown>;
  /** false once the server refused the fast path: rows come the usual way. */
  fast: boolean;
}

export interface Dialect {
  readonly client: ClientName;
  readonly label: string;
  readonly defaultPort: number | null;
  /** Most bound parameters one statement may carry. */
  readonly maxParameters: number;
  /** Most rows one statement may carry (IN lists and VALUES constructors), if limited. */
  readonly maxRows?: number;
  /** `(a, b) > (?, ?)` is supported (and used by the index); otherwise the OR form. */
  readonly rowValues: boolean;
  knexConfig(settings: ConnectionSettings): Knex.Config;
  /** The table's columns, or null when the table does not exist. */
  describeTable(knex: Knex, table: string): Promise<TableInfo | null>;
  /** How to select a column so its value arrives lossless (e.g. a timestamp as text
   *  where the driver would make a millisecond Date of it); null: select it as is. */
  selectExpression?(knex: Knex, column: ColumnInfo): Knex.Raw | null;
  /** A value as read, made lossless (the counterpart of selectExpression). */
  fromDb?(column: ColumnInfo, value: unknown): unknown;
  /** A record value as the driver must bind it for this column. */
  toDbValue(column: ColumnInfo, value: Value): unknown;
  /** Writes one chunk with upsert semantics; returns, per row, whether it was inserted,
   *  updated or found unchanged (same order as chunk.rows). */
  upsertChunk(
    trx: Knex.Transaction,
    chunk: WriteChunk,
  ): Promise<Array<"insert" | "update" | "unchanged">>;
  /** A faster path for large upserts (a bulk load into a staging table, then one
   *  set-based upsert). Same result as upsertChunk, in the order of chunk.records. Throws
   *  before writing anything for values it cannot load (the statement path takes them). */
  bulkUpsert?(knex: Knex, chunk: BulkChunk): Promise<Array<"insert" | "update" | "unchanged">>;
  /** Reads a table's select by a faster path than the driver's rows (PostgreSQL: COPY
   *  ... TO STDOUT), with the same values. `layout` is what the previous call returned
   *  for the same select list, null the first time. */
  readRows?(
    knex: Knex,
    query: Knex.QueryBuilder,
    layout: RowLayout | null,
  ): Promise<{ rows: SyncRecord[]; layout: RowLayout }>;
  /** A failure that a retry of the whole transaction may cure: deadlock, serialization
   *  failure, lock timeout, a connection dropped mid-batch. */
  isTransient(err: unknown): boolean;
  /** The start of the oldest transaction still open on the server, as ISO 8601, where the
   *  server exposes it (PostgreSQL); rows it will commit carry cursor values from then. */
  oldestOpenTransaction?(knex: Knex): Promise<string | null>;
  /** One row: version, database, user, timezone — what "Test connection" shows. */
  readonly sessionSql: string;
  /** Maps a driver error to a classified one, or null when it is not a connection problem. */
  classifyError(err: unknown): { code: ErrorCode; detail: string } | null;
}

export type ErrorCode =
  | "refused"
  | "host-not-found"
  | "auth-failed"
  | "database-not-found"
  | "timeout"
  | "ssl"
  | "driver-missing";

/** Node.js TLS options for drivers that take them (pg, mysql2). */
export function tlsOptions(
  s: ConnectionSettings,
): { rejectUnauthorized: boolean; ca?: string } | undefined {
  if (!s.ssl) return undefined;
  return { rejectUnauthorized: s.ssl.verify, ...(s.ssl.ca ? { ca: s.ssl.ca } : {}) };
}

export function poolOptions(s: ConnectionSettings): {
  min: number;
  max: number;
  idleTimeoutMillis: number;
} {
  return { min: s.poolMin, max: s.poolMax, idleTimeoutMillis: s.poolIdleMs };
}

export function splitTableName(table: string): { schema: string | null; name: string } {
  const dot = table.lastIndexOf(".");
  return dot < 0
    ? { schema: null, name: table }
    : { schema: table.slice(0, dot), name: table.slice(dot + 1) };
}

/** knex's columnInfo, shaped as ColumnInfo[]; used by dialects whose knex support is enough. */
export async function columnsFromKnex(knex: Knex, table: string): Promise<TableInfo | null> {
  const { schema, name } = splitTableName(table);
  const builder = schema ? knex(name).withSchema(schema) : knex(name);
  const info = (await builder.columnInfo()) as unknown as Record<
    string,
    { type: string; nullable: boolean }
  >;
  const columns = Object.entries(info).map(([column, meta]) => ({
    name: column,
    type: String(meta.type).toLowerCase(),
    nullable: Boolean(meta.nullable),
  }));
  return columns.length === 0 ? null : { name: table, columns };
}

/** Errors from the Node.js network layer, shared by every TCP client. */
export function classifyNetworkError(err: unknown): { code: ErrorCode; detail: string } | null {
  const e = err as { code?: string; message?: string };
  switch (e?.code) {
    case "ECONNREFUSED":
      return { code: "refused", detail: e.message ?? "connection refused" };
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return { code: "host-not-found", detail: e.message ?? "host not found" };
    case "ETIMEDOUT":
    case "ETIMEOUT":
      return { code: "timeout", detail: e.message ?? "timed out" };
    default:
      break;
  }
  if (/Knex: Timeout acquiring a connection/i.test(e?.message ?? "")) {
    return { code: "timeout", detail: "no connection could be made within the connect timeout" };
  }
  if (/ssl|tls|certificate/i.test(e?.message ?? ""))
    return { code: "ssl", detail: e.message ?? "" };
  return null;
}

/** Connection drops the Node.js layer reports the same way for every client. */
export function isDroppedConnection(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  return code === "ECONNRESET" || code === "EPIPE" || code === "PROTOCOL_CONNECTION_LOST";
}
