/**
 * A database connection as a config node holds it: validated settings, one knex pool
 * (created on first use, destroyed on close), table descriptions, and errors turned
 * into messages that name the connection and the fix.
 */
import path from "node:path";
import knexFactory, { type Knex } from "knex";
import { dialectFor } from "./index";
import type { ClientName, ColumnInfo, ConnectionSettings, Dialect, TableInfo } from "./dialect";
import type { SyncRecord, Value } from "../types";
import { connectionError, scrub, TributaryError } from "./errors";
import { missingEnv, resolveEnv } from "../env";
import type { RedNode } from "../red";

export interface ConnectionConfig {
  client?: unknown;
  host?: unknown;
  port?: unknown;
  database?: unknown;
  filename?: unknown;
  /** "env": host, port or database holds the name of an environment variable (the
   *  editor's typed input); otherwise ("str") the value itself, where ${NAME} works too. */
  hostType?: unknown;
  portType?: unknown;
  databaseType?: unknown;
  /** false/"disable", true/"require" (encrypt, accept any certificate), or "verify". */
  ssl?: unknown;
  sslCa?: unknown;
  poolMin?: unknown;
  poolMax?: unknown;
  poolIdle?: unknown;
  connectTimeout?: unknown;
  statementTimeout?: unknown;
}

/** What a tributary-db-connection config node offers the nodes that use it. */
export interface DbConnectionNode extends RedNode {
  /** The connection, or throws the configuration error that prevents one. */
  connection(): DbConnection;
}

export interface ConnectionCredentials {
  user?: string;
  password?: string;
}

function text(value: unknown): string {
  return value === undefined || value === null ? "" : resolveEnv(String(value)).trim();
}

/** Validates a config node's properties; throws a TributaryError naming the field. */
export function parseSettings(
  config: ConnectionConfig,
  credentials: ConnectionCredentials = {},
  baseDir: string = process.cwd(),
): ConnectionSettings {
  config = fromTypedInputs(config);
  const client = text(config.client) || "pg";
  const dialect = dialectFor(client);
  if (!dialect) {
    throw new TributaryError(
      "config",
      `client "${client}" is not supported: choose pg, mysql, mssql, oracle or sqlite`,
    );
  }
  const unset = [
    config.host,
    config.port,
    config.database,
    config.filename,
    credentials.user,
    credentials.password,
  ].flatMap((v) => (typeof v === "string" ? missingEnv(v) : []));
  if (unset.length) {
    throw new TributaryError(
      "config",
      `environment variable ${unset.join(", ")} is not set: set it, or replace \${${unset[0]}} in the connection`,
    );
  }
  const portText = text(config.port);
  const port = portText === "" ? null : Number(portText);
  if (port !== null && !(Number.isInteger(port) && port > 0 && port < 65536)) {
    throw new TributaryError(
      "config",
      `port "${portText}" is not a port number: use 1-65535 or leave it empty for ${dialect.defaultPort}`,
    );
  }
  const settings: ConnectionSettings = {
    client: client as ClientName,
    host: text(config.host) || "127.0.0.1",
    port,
    database: text(config.database),
    filename: "",
    ssl: parseSsl(config),
    poolMin: positiveInt(config.poolMin, 0, "pool minimum", 0),
    poolMax: positiveInt(config.poolMax, 4, "pool size"),
    poolIdleMs: positiveInt(config.poolIdle, 30, "pool idle timeout") * 1000,
    statementTimeoutMs: positiveInt(config.statementTimeout, 0, "statement timeout", 0) * 1000,
    user: credentials.user ? resolveEnv(credentials.user) : "",
    password: credentials.password ? resolveEnv(credentials.password) : "",
    connectTimeoutMs: positiveInt(config.connectTimeout, 10, "connect timeout") * 1000,
  };
  if (client === "sqlite") {
    const filename = text(config.filename);
    if (!filename)
      throw new TributaryError(
        "config",
        "filename is empty: give the SQLite database file (relative to the Node-RED user directory)",
      );
    settings.filename = filename === ":memory:" ? filename : path.resolve(baseDir, filename);
  }
  return settings;
}

/** An env-typed field becomes a ${NAME} reference, so one path resolves and reports it. */
function fromTypedInputs(config: ConnectionConfig): ConnectionConfig {
  const resolved = { ...config };
  for (const field of ["host", "port", "database"] as const) {
    const name = text(config[field]);
    if (config[`${field}Type`] !== "env" || name === "") continue;
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new TributaryError(
        "config",
        `${field}: "${name}" is not an environment variable name: use letters, digits and _ (e.g. PG_HOST)`,
      );
    }
    resolved[field] = `\${${name}}`;
  }
  return resolved;
}

function positiveInt(value: unknown, fallback: number, field: string, min = 1): number {
  if (value === undefined || value === null || value === "") return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    throw new TributaryError(
      "config",
      `${field} "${String(value)}" must be a whole number of at least ${min}`,
    );
  }
  return n;
}

function parseSsl(config: ConnectionConfig): ConnectionSettings["ssl"] {
  const mode =
    config.ssl === true
      ? "require"
      : config.ssl === false || config.ssl === undefined
        ? "disable"
        : text(config.ssl);
  const ca = text(config.sslCa) || undefined;
  switch (mode) {
    case "":
    case "false":
    case "disable":
      return null;
    case "true":
    case "require":
      return { verify: false, ...(ca ? { ca } : {}) };
    case "verify":
      return { verify: true, ...(ca ? { ca } : {}) };
    default:
      throw new TributaryError(
        "config",
        `ssl "${mode}" is not valid: choose disable, require or verify`,
      );
  }
}

/** Connections with an open pool in this process, for pool metrics. */
export const openConnections = new Set<DbConnection>();

/** What a successful "Test connection" reports. */
export interface ConnectionProbe {
  version: string;
  database: string;
  user: string;
  timezone: string;
  latencyMs: number;
}

export class DbConnection {
  readonly dialect: Dialect;
  private pool: Knex | null = null;
  private readonly tables = new Map<string, Promise<TableInfo>>();

  constructor(readonly settings: ConnectionSettings) {
    this.dialect = dialectFor(settings.client)!;
  }

  /** "PostgreSQL test@127.0.0.1:5432", for messages. */
  get label(): string {
    const s = this.settings;
    if (s.client === "sqlite") return `SQLite ${s.filename}`;
    return `${this.dialect.label} ${s.database}@${s.host}:${s.port ?? this.dialect.defaultPort}`;
  }

  knex(): Knex {
    if (!this.pool) {
      // knex prints pool errors itself; they reach the user once, classified, through explain().
      const quiet = () => {};
      this.pool = knexFactory({
        ...this.dialect.knexConfig(this.settings),
        log: { warn: quiet, error: quiet, deprecate: quiet, debug: quiet },
      });
      openConnections.add(this);
    }
    return this.pool;
  }

  /** The table's columns; throws a clear error when it does not exist. Cached until `forget`. */
  describe(table: string): Promise<TableInfo> {
    let info = this.tables.get(table);
    if (!info) {
      info = this.loadTable(table);
      info.catch(() => this.tables.delete(table));
      this.tables.set(table, info);
    }
    return info;
  }

  forget(table?: string): void {
    if (table) this.tables.delete(table);
    else this.tables.clear();
  }

  /** What to select so every column arrives lossless; "*" where the driver is exact. */
  selectList(columns: ColumnInfo[]): Array<string | Knex.Raw> {
    const { dialect } = this;
    if (!dialect.selectExpression || columns.length === 0) return ["*"];
    const knex = this.knex();
    return columns.map((c) => dialect.selectExpression!(knex, c) ?? c.name);
  }

  /** Rows as read, made lossless where the dialect selected text (see selectList). */
  lossless(columns: ColumnInfo[], rows: SyncRecord[]): SyncRecord[] {
    const fromDb = this.dialect.fromDb;
    if (!fromDb || columns.length === 0) return rows;
    for (const row of rows)
      for (const c of columns) if (c.name in row) row[c.name] = fromDb(c, row[c.name]) as Value;
    return rows;
  }

  /** Pool usage (connections in use, idle, waiting), zero before first use. */
  poolStats(): { used: number; free: number; pending: number; max: number } {
    const pool = (
      this.pool?.client as
        | { pool?: { numUsed(): number; numFree(): number; numPendingAcquires(): number } }
        | undefined
    )?.pool;
    return {
      used: pool?.numUsed() ?? 0,
      free: pool?.numFree() ?? 0,
      pending: pool?.numPendingAcquires() ?? 0,
      max: this.settings.poolMax,
    };
  }

  async test(): Promise<ConnectionProbe> {
    const started = Date.now();
    try {
      const result = await this.knex().raw(this.dialect.sessionSql);
      const rows = (
        Array.isArray(result) ? (Array.isArray(result[0]) ? result[0] : result) : result.rows
      ) as Array<Record<string, unknown>>;
      const row = rows[0] ?? {};
      const text = (v: unknown) => (v === null || v === undefined ? "" : String(v));
      return {
        version: text(row.version),
        database: this.settings.client === "sqlite" ? this.settings.filename : text(row.database),
        user: text(row.user),
        timezone: text(row.timezone),
        latencyMs: Date.now() - started,
      };
    } catch (err) {
      throw this.explain(err);
    }
  }

  /** A driver error as a TributaryError that names this connection; secrets scrubbed. */
  explain(err: unknown, doing?: string): Error {
    if (err instanceof TributaryError) return err;
    const secrets = [this.settings.password];
    const classified = this.dialect.classifyError(err);
    if (classified) return connectionError(classified.code, this.label, classified.detail, secrets);
    const message = scrub((err as Error)?.message ?? String(err), secrets);
    return new TributaryError(
      "database",
      doing ? `${doing} on ${this.label}: ${message}` : `${this.label}: ${message}`,
    );
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    this.tables.clear();
    openConnections.delete(this);
    if (pool) await pool.destroy();
  }

  private async loadTable(table: string): Promise<TableInfo> {
    let info: TableInfo | null;
    try {
      info = await this.dialect.describeTable(this.knex(), table);
    } catch (err) {
      throw this.explain(err, `reading the columns of table "${table}"`);
    }
    if (!info) {
      throw new TributaryError(
        "unknown-table",
        `table "${table}" was not found on ${this.label}: check the table name (and schema) and the user's rights`,
      );
    }
    return info;
  }
}

/** Throws a clear error when one of `columns` is not in the table. */
export function requireColumns(
  info: TableInfo,
  columns: string[],
  role: string,
  label: string,
): void {
  const known = new Set(info.columns.map((c) => c.name));
  const missing = columns.filter((c) => !known.has(c));
  if (missing.length === 0) return;
  throw new TributaryError(
    "unknown-column",
    `${role} "${missing.join('", "')}" is not a column of table "${info.name}" on ${label}: choose from ${[...known].join(", ")}`,
  );
}
