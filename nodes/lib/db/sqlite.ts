/** SQLite through better-sqlite3 (embedded: the demo flow and small syncs). */
import { isPlainObject } from "./values";
import { columnsFromKnex, type Dialect } from "./dialect";
import { existingKeys, identifierList, keyIndexes, keyText, valuesList } from "./sql";

export const sqliteDialect: Dialect = {
  client: "sqlite",
  label: "SQLite",
  defaultPort: null,
  // SQLITE_MAX_VARIABLE_NUMBER since 3.32.
  maxParameters: 32_766,
  rowValues: true,
  // SQLite has no users and keeps no zone; its date functions work in UTC.
  sessionSql:
    "select sqlite_version() as version, 'main' as database, '' as user, 'UTC' as timezone",

  knexConfig(s) {
    return {
      client: "better-sqlite3",
      connection: { filename: s.filename },
      useNullAsDefault: true,
      pool: {
        min: 1,
        max: 1,
        afterCreate(
          conn: { pragma(sql: string): unknown },
          done: (err: Error | null, conn: unknown) => void,
        ) {
          conn.pragma("busy_timeout = 5000");
          done(null, conn);
        },
      },
    };
  },

  describeTable: columnsFromKnex,

  toDbValue(_column, value) {
    if (typeof value === "boolean") return value ? 1 : 0;
    if (Array.isArray(value) || isPlainObject(value)) return JSON.stringify(value);
    return value;
  },

  async upsertChunk(trx, chunk) {
    const existing = await existingKeys(trx, chunk, true);
    const { sql: values, bindings } = valuesList(chunk.rows);
    const others = chunk.columns.filter((c) => !chunk.key.includes(c));
    const keyList = identifierList(chunk.key.length);
    const action = others.length
      ? `do update set ${others.map(() => "?? = excluded.??").join(", ")} where ${others
          .map(() => "??.?? is not excluded.??")
          .join(" or ")}`
      : "do nothing";
    const actionBindings = others.length
      ? [...others.flatMap((c) => [c, c]), ...others.flatMap((c) => [chunk.table, c, c])]
      : [];
    const result = (await trx.raw(
      `insert into ?? (${identifierList(chunk.columns.length)}) values ${values} ` +
        `on conflict (${keyList}) ${action} returning ${keyList}`,
      [
        chunk.table,
        ...chunk.columns,
        ...bindings,
        ...chunk.key,
        ...actionBindings,
        ...chunk.key,
      ] as never[],
    )) as Array<Record<string, unknown>>;
    const written = new Set(result.map((row) => keyText(chunk.key.map((k) => row[k]))));
    const indexes = keyIndexes(chunk);
    return chunk.rows.map((row) => {
      const key = keyText(indexes.map((i) => row[i]));
      if (!existing.has(key)) return "insert";
      return written.has(key) ? "update" : "unchanged";
    });
  },

  isTransient(err) {
    const code = (err as { code?: string })?.code ?? "";
    return code === "SQLITE_BUSY" || code === "SQLITE_LOCKED";
  },

  classifyError(err) {
    const code = (err as { code?: string })?.code;
    const message = (err as Error)?.message ?? String(err);
    if (code === "SQLITE_CANTOPEN") return { code: "database-not-found", detail: message };
    return null;
  },
};
