/**
 * The SQL that SQL Server and Oracle receive, checked without either server. Each test
 * runs the real TableReader or TableWriter over a knex client of the real dialect (its
 * own query compiler, placeholders and transaction code); only the driver calls are
 * replaced, by a recorder and a small in-memory table that answers the statements it
 * understands (and fails on any other). Proves: keyset reads in the OR-expanded form
 * with the dialect's own limit syntax; MERGE upserts keyed on the key columns; writes
 * chunked under the dialect's bound-parameter limit, every row sent exactly once.
 */
import assert from "node:assert/strict";
import knexFactory, { type Knex } from "knex";
import { DbConnection, parseSettings } from "../../nodes/lib/db/connection";
import type { ColumnInfo, Dialect, TableInfo } from "../../nodes/lib/db/dialect";
import { mssqlDialect } from "../../nodes/lib/db/mssql";
import { oracleDialect } from "../../nodes/lib/db/oracle";
import { TableReader } from "../../nodes/lib/db/table-reader";
import { TableWriter, type WriteMode } from "../../nodes/lib/db/table-writer";
import type { SyncRecord, Value } from "../../nodes/lib/types";

type Client = "mssql" | "oracle";
type Row = Record<string, unknown>;

interface Statement {
  /** As the driver receives it: placeholders @p0.. (SQL Server) or :1.. (Oracle). */
  sql: string;
  bindings: unknown[];
}

type LogEntry = { event: "begin" | "commit" | "rollback" } | { event: "statement"; index: number };

const DIALECTS: Record<Client, Dialect> = { mssql: mssqlDialect, oracle: oracleDialect };
const KNEX_CLIENT: Record<Client, string> = { mssql: "mssql", oracle: "oracledb" };
/** What SQL Server accepts per request: 2,100 less the two sp_executesql takes itself. */
const MSSQL_REQUEST_PARAMETERS = 2_098;

const TABLE = "orders";
const KEY = ["tenant", "id"];

const COLUMNS: Record<Client, ColumnInfo[]> = {
  mssql: [
    { name: "tenant", type: "nvarchar", nullable: false },
    { name: "id", type: "int", nullable: false },
    { name: "amount", type: "decimal", nullable: true },
    { name: "note", type: "nvarchar", nullable: true },
    { name: "updated_at", type: "datetime2", nullable: true },
  ],
  oracle: [
    { name: "tenant", type: "varchar2", nullable: false },
    { name: "id", type: "number", nullable: false },
    { name: "amount", type: "number", nullable: true },
    { name: "note", type: "varchar2", nullable: true },
    { name: "updated_at", type: "timestamp(6)", nullable: true },
  ],
};

// ---- reading the SQL back ----

const ID = String.raw`(?:\[(\w+)\]|"(\w+)")`;
const PARAM = String.raw`(?:@p\d+|:\d+)`;

function name(match: RegExpMatchArray | RegExpExecArray, at = 1): string {
  return match[at] ?? match[at + 1];
}

function identifiers(text: string): string[] {
  return [...text.matchAll(new RegExp(ID, "g"))].map((m) => name(m));
}

/** The bound value a placeholder stands for. */
function valueOf(statement: Statement, placeholder: string): unknown {
  const index = placeholder.startsWith("@p")
    ? Number(placeholder.slice(2))
    : Number(placeholder.slice(1)) - 1;
  assert.ok(
    index >= 0 && index < statement.bindings.length,
    `${placeholder} has no bound value in: ${statement.sql}`,
  );
  return statement.bindings[index];
}

function placeholdersIn(sql: string): string[] {
  return sql.match(new RegExp(PARAM, "g")) ?? [];
}

/** Every placeholder has a value and every value a placeholder, each used once. */
function assertAllBound(statement: Statement): void {
  const marks = placeholdersIn(statement.sql);
  assert.equal(new Set(marks).size, marks.length, "a placeholder is used twice");
  assert.equal(marks.length, statement.bindings.length, "placeholders and values differ");
  for (const mark of marks) valueOf(statement, mark);
}

/** The parenthesised group that opens at `open` (which must be a "("). */
function group(sql: string, open: number): string {
  assert.equal(sql[open], "(", `no group at ${open} in: ${sql}`);
  let depth = 0;
  for (let i = open; i < sql.length; i += 1) {
    if (sql[i] === "(") depth += 1;
    if (sql[i] === ")") depth -= 1;
    if (depth === 0) return sql.slice(open, i + 1);
  }
  throw new Error(`unbalanced parentheses in: ${sql}`);
}

function unwrap(text: string): string {
  return text.startsWith("(") && group(text, 0) === text ? text.slice(1, -1) : text;
}

interface Term {
  column: string;
  op: "=" | ">";
  value: unknown;
}

/** `((a > ?) or (a = ? and b > ?))` as disjuncts of column-to-bound-value comparisons;
 *  fails on anything else (a literal, a function, a row value). */
function disjuncts(statement: Statement, predicate: string): Term[][] {
  const term = new RegExp(String.raw`^${ID} (=|>) (${PARAM})$`);
  return unwrap(predicate)
    .split(/\)\s+or\s+\(/)
    .map((part) =>
      part
        .replace(/^\(|\)$/g, "")
        .split(" and ")
        .map((text) => {
          const m = term.exec(text.trim());
          assert.ok(m, `"${text}" is not a column compared with a bound value`);
          return { column: name(m), op: m[3] as "=" | ">", value: valueOf(statement, m[4]) };
        }),
    );
}

/** `order by a asc, b asc` as [a, b], every one ascending. */
/** The ORDER BY columns. Each must be qualified by the table: SQL Server resolves a bare
 *  name to the select-list alias, which for a datetime2 is its text, not its time. */
function orderBy(sql: string): string[] {
  const m = /order by (.+?)(?:\) where rownum|$)/.exec(sql);
  assert.ok(m, `no order by in: ${sql}`);
  return m[1].split(", ").map((part) => {
    const item = new RegExp(String.raw`^${ID}\.${ID} asc$`).exec(part);
    assert.ok(item, `"${part}" is not an ascending column qualified by its table`);
    return name(item, 3);
  });
}

interface Merge {
  table: string;
  source: Row[];
  on: string[];
  set: string[];
  /** SQL Server: the columns compared (EXCEPT) before a matched row is updated. */
  changedOnly: string[] | null;
  insert: string[];
  /** SQL Server: the OUTPUT columns after $action. */
  output: string[] | null;
}

/** Pairs `t.x = s.x`, checking both sides name the same column. */
function assignments(text: string): string[] {
  return [...text.matchAll(new RegExp(String.raw`t\.${ID} = s\.${ID}`, "g"))].map((m) => {
    assert.equal(name(m, 1), name(m, 3), `"${m[0]}" assigns another column`);
    return name(m);
  });
}

function parseMerge(statement: Statement): Merge {
  const { sql } = statement;
  const head = new RegExp(String.raw`^merge into ${ID}`).exec(sql);
  assert.ok(head, `not a merge: ${sql}`);
  let source: Row[];
  if (sql.includes(" using (values ")) {
    const columns = new RegExp(String.raw`\) as s \(((?:${ID}(?:, )?)+)\) on `).exec(sql);
    assert.ok(columns, `no source column list in: ${sql}`);
    const names = identifiers(columns[1]);
    const values = sql.slice(sql.indexOf(" using (values ") + 15, columns.index);
    source = [...values.matchAll(/\(([^()]*)\)/g)].map((tuple) => {
      const marks = tuple[1].split(", ");
      assert.equal(marks.length, names.length, `tuple ${tuple[0]} is not one value per column`);
      return Object.fromEntries(names.map((n, i) => [n, valueOf(statement, marks[i])]));
    });
  } else {
    const using = /^merge into \S+ t using \((.*)\) s on \(/.exec(sql);
    assert.ok(using, `no source select in: ${sql}`);
    source = using[1].split(" union all ").map((select) => {
      const item = new RegExp(String.raw`(${PARAM}) as ${ID}`, "g");
      assert.match(select, /^select .* from dual$/);
      return Object.fromEntries(
        [...select.matchAll(item)].map((m) => [name(m, 2), valueOf(statement, m[1])]),
      );
    });
  }
  const on = / on (.*?) when /.exec(sql);
  assert.ok(on, `no on clause in: ${sql}`);
  const set = / then update set (.*?) when not matched/.exec(sql);
  const except = /when matched and exists \(select (.*?) except select (.*?)\) then update/.exec(
    sql,
  );
  if (except) {
    assert.deepEqual(
      identifiers(except[1]),
      identifiers(except[2]),
      "EXCEPT compares other columns",
    );
  }
  const insert = new RegExp(
    String.raw`when not matched then insert \(([^)]*)\) values \(([^)]*)\)`,
  ).exec(sql);
  assert.ok(insert, `no insert branch in: ${sql}`);
  assert.deepEqual(
    identifiers(insert[2]),
    identifiers(insert[1]),
    "inserts each column from the source",
  );
  const output = /output \$action as \[__tributary_action\], (.*);$/.exec(sql);
  return {
    table: name(head),
    source,
    on: assignments(on[1]),
    set: set ? assignments(set[1]) : [],
    changedOnly: except ? identifiers(except[1]) : null,
    insert: identifiers(insert[1]),
    output: output ? identifiers(output[1]) : null,
  };
}

/** The rows an insert statement carries: its bound values, a row per column list. */
function insertedRows(statement: Statement): Row[] {
  const m = new RegExp(String.raw`insert into ${ID} \(([^)]*)\) values`).exec(statement.sql);
  assert.ok(m, `not an insert: ${statement.sql}`);
  const names = identifiers(m[3]);
  assert.equal(statement.bindings.length % names.length, 0, "bound values are whole rows");
  const rows: Row[] = [];
  for (let i = 0; i < statement.bindings.length; i += names.length) {
    rows.push(Object.fromEntries(names.map((n, j) => [n, statement.bindings[i + j]])));
  }
  return rows;
}

function isWrite(statement: Statement): boolean {
  return /^(merge into|insert into|begin execute immediate 'insert into)/.test(statement.sql);
}

// ---- a database that records what it is sent ----

function keyText(row: Row): string {
  return JSON.stringify(KEY.map((k) => row[k]));
}

/**
 * Records every statement (and transaction boundary) and answers from an in-memory
 * table: the count of rows without a cursor, keyset reads (no rows), key lookups,
 * MERGE with SQL Server's OUTPUT $action, and multi-row inserts.
 */
class FakeDatabase {
  readonly statements: Statement[] = [];
  readonly log: LogEntry[] = [];
  readonly errors: Error[] = [];
  readonly table = new Map<string, Row>();
  readonly knex: Knex;

  constructor(readonly client: Client) {
    const mark = (event: "begin" | "commit" | "rollback") => this.log.push({ event });
    const execute = (query: Statement & { response?: unknown }) => this.execute(query);
    const connection = {
      __knexUid: "fake",
      // tedious, as knex's SQL Server transactions use it
      state: { name: "LoggedIn" },
      inTransaction: true,
      beginTransaction(done: () => void) {
        mark("begin");
        done();
      },
      commitTransaction(done: () => void) {
        mark("commit");
        done();
      },
      rollbackTransaction(done: () => void) {
        mark("rollback");
        done();
      },
      // node-oracledb, as knex's Oracle transactions use it
      commitAsync: async () => mark("commit"),
      rollbackAsync: async () => mark("rollback"),
    };
    const Base = knexFactory({ client: KNEX_CLIENT[client] }).client
      .constructor as typeof Knex.Client;
    class RecordingClient extends Base {
      override acquireConnection(): Promise<unknown> {
        return Promise.resolve(connection);
      }
      override releaseConnection(): Promise<void> {
        return Promise.resolve();
      }
      // Where the dialect would hand SQL and bindings to its driver.
      _query(_connection: unknown, query: Statement & { response?: unknown }): Promise<unknown> {
        return execute(query);
      }
    }
    // The Oracle compiler asks for the server version; no connection tells it here.
    this.knex = knexFactory({ client: RecordingClient, version: "19" });
  }

  private execute(query: Statement & { response?: unknown }): Promise<unknown> {
    const statement = { sql: query.sql, bindings: [...query.bindings] };
    this.log.push({ event: "statement", index: this.statements.push(statement) - 1 });
    try {
      const rows = this.answer(statement);
      // tedious hands knex each row as a list of columns with their metadata
      query.response =
        this.client === "mssql"
          ? rows.map((row) =>
              Object.entries(row).map(([colName, value]) => ({ metadata: { colName }, value })),
            )
          : rows;
      return Promise.resolve(query);
    } catch (err) {
      this.errors.push(err as Error);
      return Promise.reject(err);
    }
  }

  seed(rows: Row[]): void {
    for (const row of rows) this.table.set(keyText(row), { ...row });
  }

  private answer(statement: Statement): Row[] {
    const { sql } = statement;
    if (/^select count\(\*\) (as )?\S+ from \S+ where \S+ is null$/.test(sql)) return [{ n: 0 }];
    if (/^select top \(|^select \* from \(select /.test(sql)) return [];
    const lookup = new RegExp(String.raw`^select ((?:${ID}(?:, )?)+) from ${ID} where (\(.*\))$`);
    const keys = lookup.exec(sql);
    if (keys) {
      const wanted = disjuncts(statement, keys[6]);
      const columns = identifiers(keys[1]);
      return [...this.table.values()]
        .filter((row) =>
          wanted.some((and) => and.every((t) => t.op === "=" && row[t.column] === t.value)),
        )
        .map((row) => Object.fromEntries(columns.map((c) => [c, row[c]])));
    }
    if (sql.startsWith("merge into ")) return this.merge(parseMerge(statement));
    if (isWrite(statement)) {
      for (const row of insertedRows(statement)) {
        if (this.table.has(keyText(row))) throw new Error(`duplicate key ${keyText(row)}`);
        this.table.set(keyText(row), row);
      }
      return [];
    }
    throw new Error(`the fake database does not understand: ${sql}`);
  }

  private merge(merge: Merge): Row[] {
    assert.deepEqual([...merge.on].sort(), [...KEY].sort(), "the fake matches on the key only");
    const seen = new Set<string>();
    const output: Row[] = [];
    for (const row of merge.source) {
      const key = keyText(row);
      if (seen.has(key)) throw new Error(`the merge source has key ${key} twice`);
      seen.add(key);
      const current = this.table.get(key);
      let action: "INSERT" | "UPDATE" | null = null;
      if (!current) {
        this.table.set(key, Object.fromEntries(merge.insert.map((c) => [c, row[c]])));
        action = "INSERT";
      } else if (merge.set.length > 0) {
        const changed = (merge.changedOnly ?? merge.set).some((c) => current[c] !== row[c]);
        if (changed || merge.changedOnly === null) {
          for (const c of merge.set) current[c] = row[c];
          action = "UPDATE";
        }
      }
      if (action && merge.output) {
        output.push({
          __tributary_action: action,
          ...Object.fromEntries(merge.output.map((c) => [c, row[c]])),
        });
      }
    }
    return merge.output ? output : [];
  }

  /** Statements sent between the first statement and the last, with no commit or
   *  rollback between them; throws otherwise. */
  assertOneTransaction(): void {
    const first = this.log.findIndex((e) => e.event === "statement");
    let last = this.log.length - 1;
    while (last >= 0 && this.log[last].event !== "statement") last -= 1;
    const between = this.log.slice(first, last + 1).filter((e) => e.event !== "statement");
    assert.deepEqual(between, [], "a transaction ended between two statements");
    assert.ok(
      this.log.slice(last + 1).some((e) => e.event === "commit"),
      "the statements were never committed",
    );
    assert.ok(!this.log.some((e) => e.event === "rollback"), "a transaction was rolled back");
  }
}

/** A DbConnection whose pool is the fake database and whose table is described as given. */
class FakeConnection extends DbConnection {
  constructor(
    private readonly db: FakeDatabase,
    private readonly info: TableInfo,
  ) {
    super(
      parseSettings(
        { client: db.client, host: "db.invalid", database: "sales" },
        { user: "sync", password: "not-used" },
      ),
    );
  }

  override knex(): Knex {
    return this.db.knex;
  }

  override describe(table: string): Promise<TableInfo> {
    assert.equal(table, this.info.name);
    return Promise.resolve(this.info);
  }
}

function setup(client: Client): { db: FakeDatabase; connection: FakeConnection } {
  const db = new FakeDatabase(client);
  const connection = new FakeConnection(db, { name: TABLE, columns: COLUMNS[client] });
  return { db, connection };
}

/** A record as the dialect binds it (what a statement should carry). */
function bound(client: Client, record: SyncRecord): Row {
  return Object.fromEntries(
    COLUMNS[client]
      .filter((c) => c.name in record)
      .map((c) => [c.name, DIALECTS[client].toDbValue(c, record[c.name] as Value)]),
  );
}

function order(id: number, amount: string, note: string): SyncRecord {
  return {
    tenant: id % 2 ? "acme-east" : "acme-west",
    id,
    amount,
    note,
    updated_at: `2026-05-01T10:00:${String(id % 60).padStart(2, "0")}.123456Z`,
  };
}

// ---- the tests ----

for (const client of ["mssql", "oracle"] as const) {
  const dialect = DIALECTS[client];

  describe(`${dialect.label} SQL, captured without a server`, () => {
    describe("keyset reads", () => {
      const watermark = { cursor: "2026-05-01T10:00:00.123456Z", key: ["acme-7f3", 4242] };

      /** The read issued for `after`, checked for what holds in every mode. */
      async function readAfter(
        mode: "incremental" | "full",
        after: { cursor: Value; key: Value[] } | null,
        limit: number,
      ): Promise<Statement> {
        const { db, connection } = setup(client);
        const reader = new TableReader(connection, {
          table: TABLE,
          keyColumns: KEY,
          cursorColumn: "updated_at",
        });
        await reader.open(mode);
        const before = db.statements.length;
        await reader.readBatch(after, limit);
        assert.deepEqual(db.errors, []);
        assert.equal(db.statements.length, before + 1, "one statement per batch");
        const read = db.statements[before];
        const { sql } = read;

        assert.equal(dialect.rowValues, false);
        assert.doesNotMatch(sql, /\boffset\b/i, "pages without OFFSET");
        assert.doesNotMatch(sql, /\([^()]*,[^()]*\)\s*[<>]=?\s*\(/, "no row-value comparison");
        assertAllBound(read);
        for (const literal of ["acme-7f3", "4242", "2026-05-01", String(limit)])
          assert.ok(!sql.includes(literal), `${literal} is spliced into: ${sql}`);

        // The batch size, in this dialect's syntax, bound; applied after ordering.
        if (client === "mssql") {
          const top = /^select top \((@p\d+)\) /.exec(sql);
          assert.ok(top, `no top (...) in: ${sql}`);
          assert.equal(valueOf(read, top[1]), limit);
        } else {
          const rownum = /^select \* from \((select .* order by .*)\) where rownum <= (:\d+)$/.exec(
            sql,
          );
          assert.ok(rownum, `not an ordered subquery limited by rownum: ${sql}`);
          assert.equal(valueOf(read, rownum[2]), limit);
        }
        return read;
      }

      /** The keyset predicate says exactly: (fields) > (after), ties on a prefix included. */
      function assertStrictlyAfter(read: Statement, fields: string[], after: unknown[]): void {
        const at = /(?:where| and) (\(\()/.exec(read.sql);
        assert.ok(at, `no keyset predicate in: ${read.sql}`);
        const terms = disjuncts(read, group(read.sql, at.index + at[0].length - 2));
        // (a, b, c) > (x, y, z)  ==  a > x or (a = x and b > y) or (a = x and b = y and c > z)
        assert.deepEqual(
          terms,
          fields.map((field, i) => [
            ...fields.slice(0, i).map((f, j) => ({ column: f, op: "=", value: after[j] })),
            { column: field, op: ">", value: after[i] },
          ]),
        );
        // Evaluated on every row that is below, equal to or above the position in each
        // field: selected exactly when it sorts after the position.
        const combinations = 3 ** fields.length;
        for (let n = 0; n < combinations; n += 1) {
          const sign = fields.map((_, i) => (Math.floor(n / 3 ** i) % 3) - 1);
          const relation = new Map(fields.map((f, i) => [f, sign[i]]));
          const selected = terms.some((and) =>
            and.every((t) => relation.get(t.column) === (t.op === "=" ? 0 : 1)),
          );
          const firstDifference = sign.find((s) => s !== 0) ?? 0;
          assert.equal(selected, firstDifference > 0, `row ${sign.join(",")} vs position`);
        }
      }

      it("incremental: (cursor, key) after the watermark, ordered by cursor then key", async () => {
        const read = await readAfter("incremental", watermark, 500);
        const fields = ["updated_at", ...KEY];
        assert.deepEqual(orderBy(read.sql), fields);
        assert.match(read.sql, /where (\[updated_at\]|"updated_at") is not null and \(\(/);
        const columns = new Map(COLUMNS[client].map((c) => [c.name, c]));
        const after = [watermark.cursor, ...watermark.key].map((v, i) =>
          dialect.toDbValue(columns.get(fields[i])!, v),
        );
        assertStrictlyAfter(read, fields, after);
        if (client === "mssql") assert.equal(after[0], "2026-05-01 10:00:00.123456");
      });

      it("incremental: the first batch has no keyset predicate, same order and limit", async () => {
        const read = await readAfter("incremental", null, 250);
        assert.deepEqual(orderBy(read.sql), ["updated_at", ...KEY]);
        assert.doesNotMatch(read.sql, / or /);
      });

      it("full: pages over the key alone", async () => {
        const read = await readAfter("full", { cursor: null, key: watermark.key }, 1_000);
        assert.deepEqual(orderBy(read.sql), KEY);
        const filter = read.sql.slice(read.sql.indexOf(` from `));
        assert.doesNotMatch(filter, /updated_at/, "the cursor plays no part");
        assertStrictlyAfter(read, KEY, watermark.key);
      });
    });

    describe("upsert", () => {
      it("is one MERGE keyed on the key columns, values bound, others updated", async () => {
        const { db, connection } = setup(client);
        const same = order(1, "10.50", "same note");
        const changed = order(2, "20.00", "old note");
        db.seed([bound(client, same), bound(client, changed)]);
        const records = [same, { ...changed, note: "new note" }, order(3, "30.25", "new row")];

        const writer = new TableWriter(connection, {
          table: TABLE,
          keyColumns: KEY,
          mode: "upsert",
        });
        const result = await writer.write(records);
        assert.deepEqual(db.errors, []);
        assert.deepEqual(result.failed, []);
        assert.deepEqual(
          result.outcomes.map((o) => o.action),
          // SQL Server reports what MERGE did ($action); Oracle knows only what existed.
          client === "mssql" ? ["unchanged", "update", "insert"] : ["update", "update", "insert"],
        );
        assert.deepEqual(
          result.outcomes.map((o) => o.key),
          records.map((r) => KEY.map((k) => r[k])),
        );

        const merges = db.statements.filter((s) => s.sql.startsWith("merge into "));
        assert.equal(merges.length, 1);
        const [statement] = merges;
        const merge = parseMerge(statement);
        const columns = Object.keys(records[0]);
        const others = columns.filter((c) => !KEY.includes(c));
        assert.equal(merge.table, TABLE);
        assert.deepEqual(merge.on, KEY, "matched on the key columns");
        assert.deepEqual(merge.set, others, "the other columns updated, never the key");
        assert.deepEqual(merge.insert, columns, "new rows inserted with every column");
        assert.deepEqual(
          merge.source,
          records.map((r) => bound(client, r)),
        );
        assertAllBound(statement);
        assert.equal(statement.bindings.length, records.length * columns.length, "values only");
        for (const value of ["acme-east", "same note", "new note", "20.00", "2026-05-01"])
          assert.ok(!statement.sql.includes(value), `${value} is spliced into the merge`);

        if (client === "mssql") {
          assert.match(statement.sql, /^merge into \[orders\] with \(holdlock\) as t /);
          assert.match(statement.sql, / output \$action as \[__tributary_action\], /);
          assert.deepEqual(merge.output, KEY, "output names the row by its key");
          assert.deepEqual(merge.changedOnly, others, "unchanged rows are left alone");
        } else {
          // The rows that exist are looked up first, by the composite key (OR form).
          const lookups = db.statements.filter((s) => /^select "tenant", "id" from/.test(s.sql));
          assert.equal(lookups.length, 1);
          assertAllBound(lookups[0]);
          assert.deepEqual(
            lookups[0].bindings,
            records.flatMap((r) => KEY.map((k) => r[k])),
          );
          assert.ok(db.statements.indexOf(lookups[0]) < db.statements.indexOf(statement));
        }
        db.assertOneTransaction();
        assert.deepEqual(
          [...db.table.values()],
          records.map((r) => bound(client, r)),
        );
      });
    });

    describe("chunking under the bound-parameter limit", () => {
      // SQL Server: 1,000 rows x 5 columns is 5,000 values, over its 2,100. Oracle allows
      // 65,535 values but at most 1,000 rows a statement: 2,500 rows need three.
      const count = client === "mssql" ? 1_000 : 2_500;
      const records = Array.from({ length: count }, (_, i) =>
        order(i + 1, `${i}.25`, `note ${i + 1}`),
      );

      for (const mode of ["upsert", "insert"] as WriteMode[]) {
        it(`${mode}: ${count} rows x 5 columns, every statement within the limit, every row once`, async () => {
          const { db, connection } = setup(client);
          const writer = new TableWriter(connection, { table: TABLE, keyColumns: KEY, mode });
          const result = await writer.write(records);
          assert.deepEqual(db.errors, []);
          assert.deepEqual(result.failed, []);
          assert.equal(result.outcomes.length, count);
          assert.ok(result.outcomes.every((o) => o.action === "insert"));
          assert.deepEqual(
            result.outcomes.map((o) => o.key),
            records.map((r) => KEY.map((k) => r[k])),
          );

          const limit = dialect.maxParameters;
          if (client === "mssql") assert.ok(limit <= 2_100);
          for (const statement of db.statements) {
            assert.ok(
              statement.bindings.length <= limit,
              `${statement.bindings.length} values in one statement, over ${limit}`,
            );
            if (client === "mssql")
              assert.ok(statement.bindings.length <= MSSQL_REQUEST_PARAMETERS);
          }

          const writes = db.statements.filter(isWrite);
          const columns = Object.keys(records[0]).length;
          assert.ok(writes.length >= Math.ceil((count * columns) / limit));
          assert.ok(writes.length > 1, "split into several statements");
          const sent: Row[] = [];
          for (const statement of writes) {
            const rows = mode === "upsert" ? parseMerge(statement).source : insertedRows(statement);
            assert.equal(statement.bindings.length, rows.length * columns);
            // SQL Server: a VALUES list holds 1,000 rows; Oracle: an IN list 1,000 items.
            assert.ok(rows.length <= (dialect.maxRows ?? Infinity));
            sent.push(...rows);
          }
          assert.deepEqual(
            sent,
            records.map((r) => bound(client, r)),
            "every row sent once, in order, with its values",
          );
          assert.equal(db.table.size, count);
          db.assertOneTransaction();
        });
      }
    });
  });
}
