/** Oracle through node-oracledb in thin mode (no Instant Client). */
import type { Knex } from "knex";
import { isoTimestamp, isPlainObject, utcWallClock } from "./values";
import {
  classifyNetworkError,
  columnsFromKnex,
  isDroppedConnection,
  poolOptions,
  type Dialect,
} from "./dialect";
import { existingKeys, keyIndexes, keyText } from "./sql";

// ISO 8601 text for every timestamp read, in UTC, with all nine fractional digits.
export const ORACLE_SESSION = [
  "alter session set time_zone = '+00:00'",
  `alter session set nls_timestamp_format = 'YYYY-MM-DD"T"HH24:MI:SS.FF9'`,
  `alter session set nls_timestamp_tz_format = 'YYYY-MM-DD"T"HH24:MI:SS.FF9TZH:TZM'`,
  `alter session set nls_date_format = 'YYYY-MM-DD"T"HH24:MI:SS'`,
];

/**
 * An ISO 8601 timestamp as text the session's NLS formats parse: with its offset as
 * +HH:MM for WITH TIME ZONE columns, as the UTC wall clock for TIMESTAMP (whose
 * session zone is UTC), and without a fraction for DATE, which keeps none.
 * Null when the text is not a timestamp (it is then bound unchanged and Oracle says why).
 */
export function oracleTimestampText(type: string, value: string): string | null {
  // UTC text keeps all nine digits TIMESTAMP(9) may hold; other offsets are shifted
  // to UTC (utcWallClock keeps six).
  const utc = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?)Z$/.exec(value);
  const wall = utc ? utc[1] : utcWallClock(value);
  if (wall === null) return null;
  const iso = wall.replace(" ", "T");
  if (/with (local )?time zone/.test(type)) return `${iso}+00:00`;
  if (/^date/.test(type)) return iso.slice(0, 19);
  return iso;
}

export const oracleDialect: Dialect = {
  client: "oracle",
  label: "Oracle",
  defaultPort: 1521,
  maxParameters: 65_535,
  rowValues: false,
  maxRows: 1_000,
  sessionSql:
    'select (select banner from v$version where rownum = 1) as "version", sys_context(\'USERENV\', \'DB_NAME\') as "database", user as "user", sessiontimezone as "timezone" from dual',

  knexConfig(s) {
    return {
      client: "oracledb",
      connection: {
        user: s.user || undefined,
        password: s.password || undefined,
        // tcps:// for TLS; thin mode verifies the server certificate against the system CAs.
        connectString: `${s.ssl ? "tcps://" : ""}${s.host}:${s.port ?? 1521}/${s.database}`,
        connectTimeout: Math.ceil(s.connectTimeoutMs / 1000),
      } as unknown as Knex.OracleDbConnectionConfig,
      // Numbers and dates as text: NUMBER(38) and TIMESTAMP(9) do not fit a double or a
      // Date. knex reads this option at the top level of its config, not in `connection`.
      fetchAsString: ["number", "date", "clob"],
      pool: {
        ...poolOptions(s),
        afterCreate(
          conn: { execute(sql: string): Promise<unknown> },
          done: (err: Error | null, conn: unknown) => void,
        ) {
          Promise.all(ORACLE_SESSION.map((sql) => conn.execute(sql))).then(
            () => done(null, conn),
            (err: Error) => done(err, conn),
          );
        },
      },
      acquireConnectionTimeout: s.connectTimeoutMs,
    };
  },

  describeTable: columnsFromKnex,

  fromDb(column, value) {
    if (typeof value !== "string") return value;
    if (/with time zone/.test(column.type)) return isoTimestamp(value);
    if (/^timestamp|^date/.test(column.type)) return isoTimestamp(value, "Z");
    return value;
  },

  toDbValue(column, value) {
    if (typeof value === "boolean") return value ? 1 : 0;
    if (typeof value === "string" && /^timestamp|^date/.test(column.type))
      return oracleTimestampText(column.type, value) ?? value;
    if (Array.isArray(value) || isPlainObject(value)) return JSON.stringify(value);
    return value;
  },

  async upsertChunk(trx, chunk) {
    const existing = await existingKeys(trx, chunk, false);
    const others = chunk.columns.filter((c) => !chunk.key.includes(c));
    const select = `select ${chunk.columns.map(() => "? as ??").join(", ")} from dual`;
    const source = new Array<string>(chunk.rows.length).fill(select).join(" union all ");
    const sourceBindings = chunk.rows.flatMap((row) =>
      row.flatMap((value, i) => [value, chunk.columns[i]]),
    );
    const matched = others.length
      ? `when matched then update set ${others.map(() => "t.?? = s.??").join(", ")} `
      : "";
    await trx.raw(
      `merge into ?? t using (${source}) s on (${chunk.key.map(() => "t.?? = s.??").join(" and ")}) ${matched}` +
        `when not matched then insert (${chunk.columns.map(() => "??").join(", ")}) values (${chunk.columns
          .map(() => "s.??")
          .join(", ")})`,
      [
        chunk.table,
        ...sourceBindings,
        ...chunk.key.flatMap((k) => [k, k]),
        ...others.flatMap((c) => [c, c]),
        ...chunk.columns,
        ...chunk.columns,
      ] as never[],
    );
    const indexes = keyIndexes(chunk);
    return chunk.rows.map((row) =>
      existing.has(keyText(indexes.map((i) => row[i]))) ? "update" : "insert",
    );
  },

  isTransient(err) {
    // ORA-00060 deadlock, ORA-08177 serialization, ORA-03113/03114 lost connection.
    return (
      /ORA-00060|ORA-08177|ORA-03113|ORA-03114|NJS-500/.test((err as Error)?.message ?? "") ||
      isDroppedConnection(err)
    );
  },

  classifyError(err) {
    const message = (err as Error)?.message ?? String(err);
    if (/ORA-01017/.test(message)) return { code: "auth-failed", detail: message };
    if (/ORA-12514|NJS-518|ORA-12505/.test(message))
      return { code: "database-not-found", detail: message };
    if (/ECONNREFUSED|NJS-503/.test(message)) return { code: "refused", detail: message };
    if (/ENOTFOUND|EAI_AGAIN|getaddrinfo/.test(message))
      return { code: "host-not-found", detail: message };
    if (/NJS-510|ETIMEDOUT|timed out/i.test(message)) return { code: "timeout", detail: message };
    return classifyNetworkError(err);
  },
};
