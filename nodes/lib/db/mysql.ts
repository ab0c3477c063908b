/** MySQL and MariaDB through mysql2. */
import { Readable } from "node:stream";
import type { Knex } from "knex";
import { isoTimestamp, isPlainObject, utcWallClock } from "./values";
import {
  classifyNetworkError,
  columnsFromKnex,
  isDroppedConnection,
  poolOptions,
  tlsOptions,
  type Dialect,
} from "./dialect";
import { existingKeys, identifierList, keyIndexes, keyText, valuesList } from "./sql";

interface MysqlField {
  type: string;
  string(): string | null;
}

// DATETIME has no zone; Tributary reads and writes it as UTC (the session's time
// zone is UTC too, so TIMESTAMP columns agree).
function typeCast(field: MysqlField, next: () => unknown): unknown {
  if (field.type === "DATETIME" || field.type === "TIMESTAMP") {
    const text = field.string();
    return text === null ? null : isoTimestamp(text);
  }
  if (field.type === "DATE") return field.string();
  return next();
}

const TIMESTAMP_TYPES = new Set(["datetime", "timestamp"]);

interface RawConnection {
  query(
    options: string | { sql: string; values?: unknown[]; infileStreamFactory?: () => Readable },
    cb: (err: Error | null, result?: unknown) => void,
  ): void;
}

function rawQuery(
  conn: RawConnection,
  sql: string | { sql: string; values?: unknown[]; infileStreamFactory?: () => Readable },
): Promise<unknown> {
  return new Promise((resolve, reject) =>
    conn.query(sql, (err, result) => (err ? reject(err) : resolve(result))),
  );
}

const TSV_SPECIAL = /[\\\t\n\r\0]/;
const TSV_ESCAPES: Record<string, string> = {
  "\t": "\\t",
  "\n": "\\n",
  "\r": "\\r",
  "\0": "\\0",
  "\\": "\\\\",
};

/** A value in LOAD DATA's default text format: tab-separated, backslash escapes, \N for NULL. */
function tsvValue(value: unknown): string {
  if (value === null || value === undefined) return "\\N";
  const text = typeof value === "boolean" ? (value ? "1" : "0") : String(value);
  // Most values need no escaping; testing first spares a replace per value.
  return TSV_SPECIAL.test(text) ? text.replace(/[\\\t\n\r\0]/g, (c) => TSV_ESCAPES[c]) : text;
}

/** Staging tables already created, per pooled connection (temporary tables live as long as it). */
const stagedOn = new WeakMap<object, Set<string>>();

function quoteId(name: string): string {
  return `\`${name.replace(/`/g, "``")}\``;
}

export const mysqlDialect: Dialect = {
  client: "mysql",
  label: "MySQL / MariaDB",
  defaultPort: 3306,
  maxParameters: 65_535,
  rowValues: true,
  // 'SYSTEM' alone says nothing: name the server's zone behind it.
  sessionSql:
    "select version() as version, database() as `database`, current_user() as `user`, if(@@session.time_zone = 'SYSTEM', concat('SYSTEM (', @@system_time_zone, ')'), @@session.time_zone) as timezone",

  knexConfig(s) {
    return {
      client: "mysql2",
      connection: {
        host: s.host,
        port: s.port ?? 3306,
        database: s.database,
        user: s.user || undefined,
        password: s.password || undefined,
        ssl: tlsOptions(s),
        connectTimeout: s.connectTimeoutMs,
        charset: "utf8mb4",
        timezone: "Z",
        supportBigNumbers: true,
        bigNumberStrings: true,
        decimalNumbers: false,
        dateStrings: true,
        typeCast,
      } as unknown as Knex.MySql2ConnectionConfig,
      pool: {
        ...poolOptions(s),
        afterCreate(
          conn: { query(sql: string, cb: (err: Error | null) => void): void },
          done: (err: Error | null, conn: unknown) => void,
        ) {
          conn.query("set time_zone = '+00:00'", (err) => {
            if (err || !s.statementTimeoutMs) return done(err, conn);
            // MariaDB names it max_statement_time (seconds); MySQL max_execution_time (ms, SELECT only).
            conn.query(
              `set session max_statement_time = ${s.statementTimeoutMs / 1000}`,
              (mariaErr) => {
                if (!mariaErr) return done(null, conn);
                conn.query(`set session max_execution_time = ${s.statementTimeoutMs}`, (mysqlErr) =>
                  done(mysqlErr, conn),
                );
              },
            );
          });
        },
      },
      acquireConnectionTimeout: s.connectTimeoutMs,
    };
  },

  describeTable: columnsFromKnex,

  toDbValue(column, value) {
    if (value === null || Buffer.isBuffer(value)) return value;
    if (typeof value === "string" && TIMESTAMP_TYPES.has(column.type))
      return utcWallClock(value) ?? value;
    if (Array.isArray(value) || isPlainObject(value)) return JSON.stringify(value);
    return value;
  },

  async upsertChunk(trx, chunk) {
    const existing = await existingKeys(trx, chunk, true);
    const { sql: values, bindings } = valuesList(chunk.rows);
    const others = chunk.columns.filter((c) => !chunk.key.includes(c));
    // With only key columns there is nothing to update; re-assigning a key is a no-op.
    const updates = (others.length ? others : chunk.key.slice(0, 1)).map(() => "?? = values(??)");
    const updateBindings = (others.length ? others : chunk.key.slice(0, 1)).flatMap((c) => [c, c]);
    await trx.raw(
      `insert into ?? (${identifierList(chunk.columns.length)}) values ${values} ` +
        `on duplicate key update ${updates.join(", ")}`,
      [chunk.table, ...chunk.columns, ...bindings, ...updateBindings] as never[],
    );
    const indexes = keyIndexes(chunk);
    return chunk.rows.map((row) =>
      existing.has(keyText(indexes.map((i) => row[i]))) ? "update" : "insert",
    );
  },

  isTransient(err) {
    const code = (err as { code?: string })?.code ?? "";
    return (
      ["ER_LOCK_DEADLOCK", "ER_LOCK_WAIT_TIMEOUT", "ER_QUERY_INTERRUPTED"].includes(code) ||
      isDroppedConnection(err)
    );
  },

  async bulkUpsert(knex, chunk) {
    if (chunk.rows.some((row) => row.some((v) => Buffer.isBuffer(v)))) {
      throw new Error("bulk path: binary values are written with the statement path");
    }
    const table = chunk.table.split(".").map(quoteId).join(".");
    const stage = quoteId(
      `tributary_stage_${chunk.table.replace(/[^A-Za-z0-9_]/g, "_")}`.slice(0, 64),
    );
    const columns = chunk.columns.map(quoteId).join(", ");
    const others = chunk.columns.filter((c) => !chunk.key.includes(c));
    const updates = (others.length ? others : chunk.key.slice(0, 1)).map(
      (c) => `${quoteId(c)} = values(${quoteId(c)})`,
    );
    const keyJoin = chunk.key.map((k) => `t.${quoteId(k)} = s.${quoteId(k)}`).join(" and ");
    const lines: string[] = [];
    for (const row of chunk.rows) lines.push(row.map(tsvValue).join("\t"));
    const data = Buffer.from(lines.join("\n") + "\n", "utf8");
    const conn = (await knex.client.acquireConnection()) as RawConnection;
    try {
      // A temporary table is private to this connection and lives as long as it.
      const staged = stagedOn.get(conn) ?? new Set<string>();
      stagedOn.set(conn, staged);
      if (!staged.has(stage)) {
        await rawQuery(conn, `create temporary table if not exists ${stage} like ${table}`);
        staged.add(stage);
      }
      await rawQuery(conn, `truncate table ${stage}`);
      const loaded = (await rawQuery(conn, {
        sql: `load data local infile 'tributary-batch' into table ${stage} character set utf8mb4 (${columns})`,
        infileStreamFactory: () => Readable.from([data]),
      })) as { warningStatus?: number };
      // LOCAL loads turn data errors into warnings (NULL into NOT NULL becomes '',
      // long text is cut): any warning means a value changed, so the statement path,
      // which reports such rows, takes over. Nothing reached the target yet.
      if (loaded.warningStatus) throw new Error(`bulk load: ${loaded.warningStatus} warning(s)`);
      // No transaction: the one INSERT ... SELECT is atomic by itself, and a transaction
      // would not make the insert/update labels exact under a concurrent writer either
      // (the select takes no locks); it would only cost two round trips per batch.
      const existing = (await rawQuery(
        conn,
        `select ${chunk.key.map((k) => `s.${quoteId(k)}`).join(", ")} from ${stage} s join ${table} t on ${keyJoin}`,
      )) as Array<Record<string, unknown>>;
      await rawQuery(
        conn,
        `insert into ${table} (${columns}) select ${columns} from ${stage} on duplicate key update ${updates.join(", ")}`,
      );
      const seen = new Set(existing.map((row) => keyText(chunk.key.map((k) => row[k]))));
      const indexes = keyIndexes(chunk);
      return chunk.rows.map((row) =>
        seen.has(keyText(indexes.map((i) => row[i]))) ? "update" : "insert",
      );
    } finally {
      await knex.client.releaseConnection(conn);
    }
  },

  classifyError(err) {
    const code = (err as { code?: string })?.code;
    const message = (err as Error)?.message ?? String(err);
    if (code === "ER_ACCESS_DENIED_ERROR" || code === "ER_DBACCESS_DENIED_ERROR") {
      return { code: "auth-failed", detail: message };
    }
    if (code === "ER_BAD_DB_ERROR") return { code: "database-not-found", detail: message };
    if (code === "HANDSHAKE_NO_SSL_SUPPORT" || code === "HANDSHAKE_SSL_ERROR")
      return { code: "ssl", detail: message };
    return classifyNetworkError(err);
  },
};
