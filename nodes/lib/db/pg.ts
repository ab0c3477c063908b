/** PostgreSQL through node-postgres. */
import pg from "pg";
import type { Knex } from "knex";
import { isoTimestamp, isPlainObject } from "./values";
import {
  classifyNetworkError,
  columnsFromKnex,
  isDroppedConnection,
  poolOptions,
  tlsOptions,
  type Dialect,
  type RowLayout,
} from "./dialect";
import { identifierList, keyIndexes, keyText, valuesList } from "./sql";
import { copyRows } from "./pg-copy";
import type { SyncRecord } from "../types";

const TIMESTAMPTZ = 1184;
const TIMESTAMP = 1114;
const DATE = 1082;
const INT8 = 20;
const NUMERIC = 1700;

// Per-client parsers, so other users of `pg` in the same Node-RED are not affected.
function getTypeParser(oid: number, format?: string): (text: string) => unknown {
  if (format === "binary") return pg.types.getTypeParser(oid, "binary");
  switch (oid) {
    case TIMESTAMPTZ:
      return (text) => isoTimestamp(text);
    case TIMESTAMP:
      return (text) => isoTimestamp(text, null);
    case DATE:
    case INT8:
    case NUMERIC:
      return (text) => text;
    default:
      return pg.types.getTypeParser(oid, "text");
  }
}

function layoutOf(fields: pg.FieldDef[]): RowLayout {
  return {
    names: fields.map((f) => f.name),
    parsers: fields.map((f) => getTypeParser(f.dataTypeID)),
    fast: true,
  };
}

export const pgDialect: Dialect = {
  client: "pg",
  label: "PostgreSQL",
  defaultPort: 5432,
  maxParameters: 65_535,
  rowValues: true,
  sessionSql:
    "select version() as version, current_database() as database, current_user as \"user\", current_setting('TimeZone') as timezone",

  knexConfig(s) {
    return {
      client: "pg",
      connection: {
        host: s.host,
        port: s.port ?? 5432,
        database: s.database,
        user: s.user || undefined,
        password: s.password || undefined,
        ssl: tlsOptions(s) ?? false,
        connectionTimeoutMillis: s.connectTimeoutMs,
        // Timestamps come back in UTC so equal instants give equal text.
        options: `-c TimeZone=UTC${s.statementTimeoutMs ? ` -c statement_timeout=${s.statementTimeoutMs}` : ""}`,
        types: { getTypeParser },
      } as unknown as Knex.PgConnectionConfig,
      pool: poolOptions(s),
      acquireConnectionTimeout: s.connectTimeoutMs,
    };
  },

  describeTable: columnsFromKnex,

  // The first read learns the columns' types from the row protocol; the next ones use
  // COPY with those types' parsers. When COPY fails, the row protocol reads the batch:
  // if that works, the server (one that speaks PostgreSQL's protocol without COPY)
  // gets the row protocol for the rest of the run; if not, its error is the batch's.
  async readRows(knex, query, layout) {
    let copyFailed = false;
    if (layout?.fast) {
      const { sql, bindings } = query.toSQL().toNative();
      try {
        const rows = await copyRows(knex, sql, bindings, layout);
        if (rows) return { rows, layout };
      } catch {
        copyFailed = true;
      }
    }
    const plain = query.toSQL();
    const result = (await knex.raw(plain.sql, plain.bindings)) as pg.QueryResult;
    const learnt = layout ?? layoutOf(result.fields);
    return {
      rows: result.rows as SyncRecord[],
      layout: copyFailed ? { ...learnt, fast: false } : learnt,
    };
  },

  toDbValue(column, value) {
    if (value === null || Buffer.isBuffer(value)) return value;
    if (column.type === "boolean" && (typeof value === "number" || typeof value === "string")) {
      return value === 1 || value === "1" || value === "true" || value === "t";
    }
    if (Array.isArray(value)) return column.type === "array" ? value : JSON.stringify(value);
    if (isPlainObject(value)) return JSON.stringify(value);
    return value;
  },

  async upsertChunk(trx, chunk) {
    const { sql: values, bindings } = valuesList(chunk.rows);
    const others = chunk.columns.filter((c) => !chunk.key.includes(c));
    const keyList = identifierList(chunk.key.length);
    const action = others.length
      ? `do update set ${others.map(() => "?? = excluded.??").join(", ")} ` +
        `where (${others.map(() => "??.??").join(", ")}) is distinct from (${others.map(() => "excluded.??").join(", ")})`
      : "do nothing";
    const actionBindings = others.length
      ? [...others.flatMap((c) => [c, c]), ...others.flatMap((c) => [chunk.table, c]), ...others]
      : [];
    const sql =
      `insert into ?? (${identifierList(chunk.columns.length)}) values ${values} ` +
      `on conflict (${keyList}) ${action} returning ${keyList}, (xmax = 0) as "__tributary_inserted"`;
    const result = await trx.raw(sql, [
      chunk.table,
      ...chunk.columns,
      ...bindings,
      ...chunk.key,
      ...actionBindings,
      ...chunk.key,
    ] as never[]);
    const written = new Map<string, boolean>();
    for (const row of result.rows as Array<Record<string, unknown>>) {
      written.set(keyText(chunk.key.map((k) => row[k])), row.__tributary_inserted === true);
    }
    const indexes = keyIndexes(chunk);
    return chunk.rows.map((row) => {
      const inserted = written.get(keyText(indexes.map((i) => row[i])));
      if (inserted === undefined) return "unchanged";
      return inserted ? "insert" : "update";
    });
  },

  async oldestOpenTransaction(knex) {
    // Other roles' sessions show xact_start as NULL unless this role has
    // pg_read_all_stats; then the look-back window is the only protection.
    const result = await knex.raw(
      `select to_char(min(xact_start) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as bound
         from pg_stat_activity
        where xact_start is not null and pid <> pg_backend_pid()
          and backend_type = 'client backend' and datname = current_database()`,
    );
    const bound = (result.rows as Array<{ bound: string | null }>)[0]?.bound ?? null;
    return bound === null ? null : isoTimestamp(bound);
  },

  isTransient(err) {
    const code = (err as { code?: string })?.code ?? "";
    // 40001 serialization failure, 40P01 deadlock, 57P01 admin shutdown, 08xxx connection exceptions.
    return (
      ["40001", "40P01", "55P03", "57P01"].includes(code) ||
      code.startsWith("08") ||
      isDroppedConnection(err) ||
      /Connection terminated unexpectedly/.test((err as Error)?.message ?? "")
    );
  },

  classifyError(err) {
    const code = (err as { code?: string })?.code;
    const message = (err as Error)?.message ?? String(err);
    if (code === "28P01" || code === "28000") return { code: "auth-failed", detail: message };
    if (code === "3D000") return { code: "database-not-found", detail: message };
    if (/does not support SSL|SSL off|no pg_hba.conf entry .* SSL/i.test(message)) {
      return { code: "ssl", detail: message };
    }
    if (/timeout expired|Connection terminated due to connection timeout/i.test(message)) {
      return { code: "timeout", detail: message };
    }
    return classifyNetworkError(err);
  },
};
