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
  type BulkChunk,
  type ColumnInfo,
  type Dialect,
} from "./dialect";
import type { Value } from "../types";
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

/** Text in LOAD DATA's default format: tab-separated, backslash escapes. */
function tsvText(text: string): string {
  // Most values need no escaping; testing first spares a replace per value.
  return TSV_SPECIAL.test(text) ? text.replace(/[\\\t\n\r\0]/g, (c) => TSV_ESCAPES[c]) : text;
}

/** A record value as mysql2 binds it for the column (see toDbValue). */
function mysqlValue(column: ColumnInfo, value: Value): unknown {
  if (value === null || Buffer.isBuffer(value)) return value;
  if (typeof value === "string" && TIMESTAMP_TYPES.has(column.type))
    return utcWallClock(value) ?? value;
  if (Array.isArray(value) || isPlainObject(value)) return JSON.stringify(value);
  return value;
}

const ISO_UTC_TEXT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z$/;

/** A timestamp as DATETIME text. UTC ISO text, by far the most common, loses only its
 *  Z: MySQL and MariaDB read the T separator, and a fraction of fewer than six digits,
 *  as they are (one slice per value instead of a rebuilt string). */
function wallClock(text: string): string {
  if (ISO_UTC_TEXT.test(text)) return text.slice(0, text.length - 1);
  return utcWallClock(text) ?? text;
}

/**
 * One column's values as LOAD DATA text, with the conversions mysqlValue makes; \N is
 * NULL. Built once per column and batch, so each value takes one call and no array.
 */
function tsvEncoder(column: ColumnInfo): (value: Value | undefined) => string {
  const timestamp = TIMESTAMP_TYPES.has(column.type);
  return (value) => {
    if (value === null || value === undefined) return "\\N";
    if (typeof value === "string") return tsvText(timestamp ? wallClock(value) : value);
    if (typeof value === "number") return String(value);
    if (typeof value === "boolean") return value ? "1" : "0";
    if (Buffer.isBuffer(value))
      throw new Error("bulk path: binary values are written with statements");
    return tsvText(String(mysqlValue(column, value)));
  };
}

/** Staging tables already created, per pooled connection (temporary tables live as long as it). */
const stagedOn = new WeakMap<object, Set<string>>();

/** The staging table's extra column: the record's position in the batch, so the rows that
 *  already existed are told by number, whatever form the key's values take. */
const ROW = "tributary_row";

function quoteId(name: string): string {
  return `\`${name.replace(/`/g, "``")}\``;
}

/**
 * How many of a batch's two ends (its first and last record's keys) are in the table:
 * 0 looks like new rows (an initial load), 2 like rows that exist (an incremental
 * one). One indexed lookup; a wrong guess costs one statement rolled back, never a
 * wrong row or label.
 */
async function endsFound(conn: RawConnection, table: string, chunk: BulkChunk): Promise<number> {
  const keyColumns = chunk.key.map((k) => chunk.columns.find((c) => c.name === k)!);
  const ends = [chunk.records[0], chunk.records[chunk.records.length - 1]];
  const match = `(${keyColumns.map((c) => `${quoteId(c.name)} = ?`).join(" and ")})`;
  const found = (await rawQuery(conn, {
    sql: `select count(*) as n from ${table} where ${match} or ${match}`,
    values: ends.flatMap((r) => keyColumns.map((c) => mysqlValue(c, r[c.name] ?? null))),
  })) as Array<{ n: number | string }>;
  return Number(found[0].n);
}

/**
 * A LOAD DATA LOCAL statement streaming `data`. Built apart so its stream factory's
 * closure holds the bytes alone: one that shared a scope with the batch's records kept
 * them reachable after the batch was written (measured: 45 MB more peak memory on the
 * benchmark's initial load).
 */
function loadQuery(
  sql: string,
  data: Buffer,
): { sql: string; infileStreamFactory: () => Readable } {
  return { sql, infileStreamFactory: () => Readable.from([data]) };
}

/** Runs `statement` in a transaction and keeps it only if `keep` says so. */
async function tryInTransaction<T>(
  conn: RawConnection,
  statement: () => Promise<T>,
  keep: (result: T) => boolean,
): Promise<boolean> {
  await rawQuery(conn, "start transaction");
  let kept = false;
  try {
    kept = keep(await statement());
  } finally {
    await rawQuery(conn, kept ? "commit" : "rollback").catch((err: Error) => {
      if (kept) throw err; // a commit that failed is the write failing
    });
  }
  return kept;
}

/**
 * New rows go straight into the table, and are kept only if every record went in as
 * it was: LOCAL loads turn a duplicate key (a row that existed) and a value the column
 * would change into warnings, and any warning rolls the load back. So a kept load
 * inserted exactly these records: each one's outcome is "insert".
 */
function loadNewRows(
  conn: RawConnection,
  table: string,
  chunk: BulkChunk,
  data: Buffer,
): Promise<boolean> {
  const columns = chunk.columns.map((c) => quoteId(c.name)).join(", ");
  return tryInTransaction(
    conn,
    () =>
      rawQuery(
        conn,
        // The position field goes to a variable: the table has no column for it.
        loadQuery(
          `load data local infile 'tributary-batch' into table ${table} character set utf8mb4 (@${ROW}, ${columns})`,
          data,
        ),
      ) as Promise<{ affectedRows?: number; warningStatus?: number }>,
    (loaded) => !loaded.warningStatus && loaded.affectedRows === chunk.records.length,
  );
}

/**
 * LOAD DATA into a temporary copy of the table (plus the record's position); returns
 * its name. Throws when the load changed a value, before anything reached the target.
 */
async function stageBatch(conn: RawConnection, table: string, chunk: BulkChunk, data: Buffer) {
  const stage = quoteId(
    `tributary_stage_${chunk.table.replace(/[^A-Za-z0-9_]/g, "_")}`.slice(0, 64),
  );
  const columns = chunk.columns.map((c) => quoteId(c.name)).join(", ");
  // A temporary table is private to this connection and lives as long as it.
  const staged = stagedOn.get(conn) ?? new Set<string>();
  stagedOn.set(conn, staged);
  if (!staged.has(stage)) {
    await rawQuery(conn, `drop temporary table if exists ${stage}`);
    await rawQuery(conn, `create temporary table ${stage} like ${table}`);
    await rawQuery(conn, `alter table ${stage} add column ${ROW} int unsigned`);
    staged.add(stage);
  }
  await rawQuery(conn, `truncate table ${stage}`);
  const loaded = (await rawQuery(
    conn,
    loadQuery(
      `load data local infile 'tributary-batch' into table ${stage} character set utf8mb4 (${ROW}, ${columns})`,
      data,
    ),
  )) as { warningStatus?: number };
  // LOCAL loads turn data errors into warnings (NULL into NOT NULL becomes '',
  // long text is cut): any warning means a value changed, so the statement path,
  // which reports such rows, takes over. Nothing reached the target yet.
  if (loaded.warningStatus) throw new Error(`bulk load: ${loaded.warningStatus} warning(s)`);
  return stage;
}

/** INSERT ... SELECT ... ON DUPLICATE KEY UPDATE from the staging table. */
function upsertFromStage(conn: RawConnection, table: string, stage: string, chunk: BulkChunk) {
  const names = chunk.columns.map((c) => c.name);
  const columns = names.map(quoteId).join(", ");
  const others = names.filter((c) => !chunk.key.includes(c));
  const updates = (others.length ? others : chunk.key.slice(0, 1)).map(
    (c) => `${quoteId(c)} = values(${quoteId(c)})`,
  );
  return rawQuery(
    conn,
    `insert into ${table} (${columns}) select ${columns} from ${stage} on duplicate key update ${updates.join(", ")}`,
  ) as Promise<{ info?: string }>;
}

/**
 * A batch whose rows all exist: the upsert is kept only if the server counted every
 * record as a changed duplicate ("Duplicates: N"), so each one's outcome is "update"
 * without a join. A new or unchanged row among them rolls it back.
 */
function updateExisting(conn: RawConnection, table: string, stage: string, chunk: BulkChunk) {
  return tryInTransaction(
    conn,
    () => upsertFromStage(conn, table, stage, chunk),
    (result) => Number(/Duplicates: (\d+)/.exec(result.info ?? "")?.[1]) === chunk.records.length,
  );
}

/**
 * The general case: one join tells which records existed, then the upsert. No
 * transaction: the one INSERT ... SELECT is atomic by itself, and a transaction would
 * not make the labels exact under a concurrent writer either (the select takes no
 * locks).
 */
async function labelledUpsert(
  conn: RawConnection,
  table: string,
  stage: string,
  chunk: BulkChunk,
): Promise<Array<"insert" | "update">> {
  const keyJoin = chunk.key.map((k) => `t.${quoteId(k)} = s.${quoteId(k)}`).join(" and ");
  const existing = (await rawQuery(
    conn,
    `select s.${ROW} as r from ${stage} s join ${table} t on ${keyJoin}`,
  )) as Array<{ r: number }>;
  await upsertFromStage(conn, table, stage, chunk);
  const actions = new Array<"insert" | "update">(chunk.records.length).fill("insert");
  for (const { r } of existing) actions[r] = "update";
  return actions;
}

/** The batch as LOAD DATA lines: the record's position, then its values. */
function tsvLines(chunk: BulkChunk): string {
  const names = chunk.columns.map((c) => c.name);
  const encoders = chunk.columns.map(tsvEncoder);
  // join() builds flat strings; += would chain a dozen rope pieces per row for the
  // garbage collector.
  const lines = new Array<string>(chunk.records.length + 1);
  const fields = new Array<string>(names.length + 1);
  for (let i = 0; i < chunk.records.length; i += 1) {
    const record = chunk.records[i];
    fields[0] = String(i);
    for (let c = 0; c < names.length; c += 1) fields[c + 1] = encoders[c](record[names[c]]);
    lines[i] = fields.join("\t");
  }
  lines[chunk.records.length] = "";
  return lines.join("\n");
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

  toDbValue: mysqlValue,

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
    const table = chunk.table.split(".").map(quoteId).join(".");
    const data = Buffer.from(tsvLines(chunk), "utf8");
    const conn = (await knex.client.acquireConnection()) as RawConnection;
    try {
      const found = await endsFound(conn, table, chunk);
      if (found === 0 && (await loadNewRows(conn, table, chunk, data)))
        return new Array<"insert">(chunk.records.length).fill("insert");
      const stage = await stageBatch(conn, table, chunk, data);
      if (found === 2 && (await updateExisting(conn, table, stage, chunk)))
        return new Array<"update">(chunk.records.length).fill("update");
      return await labelledUpsert(conn, table, stage, chunk);
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
