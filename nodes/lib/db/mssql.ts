/** SQL Server through tedious. */
import type { Knex } from "knex";
import { isoTimestamp, isPlainObject, utcWallClock } from "./values";
import {
  classifyNetworkError,
  columnsFromKnex,
  isDroppedConnection,
  poolOptions,
  type Dialect,
} from "./dialect";
import { identifierList, keyIndexes, keyText, valuesList } from "./sql";

const WALL_CLOCK_TYPES = new Set(["datetime", "datetime2", "smalldatetime"]);

export const mssqlDialect: Dialect = {
  client: "mssql",
  label: "SQL Server",
  defaultPort: 1433,
  // 2,100 per request, less one for safety margins some drivers use.
  // 2,100 per request, two of which sp_executesql takes for itself.
  maxParameters: 2_098,
  rowValues: false,
  maxRows: 1_000,
  // datetime2 carries no zone: the server's offset is what a watermark is read in.
  sessionSql:
    "select @@version as version, db_name() as [database], suser_sname() as [user], datename(tzoffset, sysdatetimeoffset()) as timezone",

  knexConfig(s) {
    return {
      client: "mssql",
      connection: {
        server: s.host,
        port: s.port ?? 1433,
        database: s.database,
        user: s.user || undefined,
        password: s.password || undefined,
        connectionTimeout: s.connectTimeoutMs,
        requestTimeout: s.statementTimeoutMs || 0,
        options: {
          encrypt: s.ssl !== null,
          trustServerCertificate: !s.ssl?.verify,
          ...(s.ssl?.ca ? { cryptoCredentialsDetails: { ca: s.ssl.ca } } : {}),
        },
      } as unknown as Knex.MsSqlConnectionConfig,
      pool: poolOptions(s),
      acquireConnectionTimeout: s.connectTimeoutMs,
    };
  },

  describeTable: columnsFromKnex,

  // tedious makes a JavaScript Date (milliseconds) of datetime2's 100 ns values:
  // select them as ISO 8601 text instead (style 126; 127 keeps the offset).
  selectExpression(knex, column) {
    if (column.type === "datetimeoffset")
      return knex.raw("convert(varchar(40), ??, 127) as ??", [column.name, column.name]);
    if (WALL_CLOCK_TYPES.has(column.type))
      return knex.raw("convert(varchar(40), ??, 126) as ??", [column.name, column.name]);
    return null;
  },

  fromDb(column, value) {
    if (typeof value !== "string") return value;
    if (column.type === "datetimeoffset" || WALL_CLOCK_TYPES.has(column.type))
      return isoTimestamp(value);
    return value;
  },

  toDbValue(column, value) {
    if (value === null || Buffer.isBuffer(value)) return value;
    if (typeof value === "string" && WALL_CLOCK_TYPES.has(column.type))
      return utcWallClock(value) ?? value;
    if (Array.isArray(value) || isPlainObject(value)) return JSON.stringify(value);
    return value;
  },

  async upsertChunk(trx, chunk) {
    const { sql: values, bindings } = valuesList(chunk.rows);
    const others = chunk.columns.filter((c) => !chunk.key.includes(c));
    const on = chunk.key.map(() => "t.?? = s.??").join(" and ");
    // EXCEPT compares NULLs as equal, so unchanged rows are left alone and not output.
    const matched = others.length
      ? `when matched and exists (select ${others.map(() => "s.??").join(", ")} except select ${others
          .map(() => "t.??")
          .join(", ")}) then update set ${others.map(() => "t.?? = s.??").join(", ")} `
      : "";
    const sql =
      `merge into ?? with (holdlock) as t using (values ${values}) as s (${identifierList(chunk.columns.length)}) ` +
      `on ${on} ${matched}` +
      `when not matched then insert (${identifierList(chunk.columns.length)}) values (${chunk.columns
        .map(() => "s.??")
        .join(", ")}) ` +
      `output $action as [__tributary_action], ${chunk.key.map(() => "inserted.??").join(", ")};`;
    const result = (await trx.raw(sql, [
      chunk.table,
      ...bindings,
      ...chunk.columns,
      ...chunk.key.flatMap((k) => [k, k]),
      ...(others.length ? [...others, ...others, ...others.flatMap((c) => [c, c])] : []),
      ...chunk.columns,
      ...chunk.columns,
      ...chunk.key,
    ] as never[])) as Array<Record<string, unknown>>;
    const written = new Map<string, string>();
    for (const row of result)
      written.set(keyText(chunk.key.map((k) => row[k])), String(row.__tributary_action));
    const indexes = keyIndexes(chunk);
    return chunk.rows.map((row) => {
      const action = written.get(keyText(indexes.map((i) => row[i])));
      if (action === undefined) return "unchanged";
      return action === "INSERT" ? "insert" : "update";
    });
  },

  isTransient(err) {
    // 1205 deadlock victim, 1222 lock request timeout.
    const number = (err as { number?: number })?.number;
    return (
      number === 1205 ||
      number === 1222 ||
      isDroppedConnection(err) ||
      (err as { code?: string })?.code === "ESOCKET"
    );
  },

  classifyError(err) {
    const e = err as { code?: string; message?: string };
    const message = e?.message ?? String(err);
    if (e?.code === "ELOGIN") {
      if (/Cannot open database/i.test(message))
        return { code: "database-not-found", detail: message };
      return { code: "auth-failed", detail: message };
    }
    if (e?.code === "ESOCKET" || e?.code === "ETIMEOUT") {
      // tedious tries each address in turn and reports "Could not connect (sequence)"
      // when all refused.
      if (/ECONNREFUSED|Could not connect/.test(message))
        return { code: "refused", detail: message };
      if (/ENOTFOUND|EAI_AGAIN|getaddrinfo/.test(message))
        return { code: "host-not-found", detail: message };
      if (e.code === "ETIMEOUT" || /ETIMEDOUT/.test(message))
        return { code: "timeout", detail: message };
    }
    if (/Cannot find module 'tedious'/.test(message))
      return { code: "driver-missing", detail: message };
    return classifyNetworkError(err);
  },
};
