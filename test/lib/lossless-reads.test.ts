import assert from "node:assert/strict";
import knexFactory from "knex";
import { mssqlDialect } from "../../nodes/lib/db/mssql";
import { ORACLE_SESSION, oracleDialect } from "../../nodes/lib/db/oracle";

describe("lossless reads where the driver would round", () => {
  it("SQL Server: datetime2 and datetimeoffset are selected as ISO 8601 text", () => {
    const knex = knexFactory({ client: "mssql" });
    const wall = mssqlDialect.selectExpression!(knex, {
      name: "updated_at",
      type: "datetime2",
      nullable: true,
    })!;
    const zoned = mssqlDialect.selectExpression!(knex, {
      name: "seen",
      type: "datetimeoffset",
      nullable: true,
    })!;
    const sql = knex.select([wall, zoned, "id"]).from("orders").toSQL().sql;
    assert.equal(
      sql,
      "select convert(varchar(40), [updated_at], 126) as [updated_at], convert(varchar(40), [seen], 127) as [seen], [id] from [orders]",
    );
    assert.equal(
      mssqlDialect.selectExpression!(knex, { name: "n", type: "int", nullable: true }),
      null,
    );
  });

  it("SQL Server: the text keeps 100 ns precision and gets an offset", () => {
    const column = { name: "t", type: "datetime2", nullable: true };
    assert.equal(
      mssqlDialect.fromDb!(column, "2026-05-01T10:00:00.1234567"),
      "2026-05-01T10:00:00.1234567Z",
    );
    const zoned = { name: "t", type: "datetimeoffset", nullable: true };
    assert.equal(
      mssqlDialect.fromDb!(zoned, "2026-05-01T10:00:00.1234567Z"),
      "2026-05-01T10:00:00.1234567Z",
    );
  });

  it("SQL Server: binding a watermark converts ISO 8601 to UTC wall-clock text", () => {
    const column = { name: "t", type: "datetime2", nullable: true };
    assert.equal(
      mssqlDialect.toDbValue(column, "2026-05-01T12:00:00.123456+02:00"),
      "2026-05-01 10:00:00.123456",
    );
  });

  it("Oracle: sessions read timestamps as ISO text in UTC, numbers as text", () => {
    assert.ok(ORACLE_SESSION.includes("alter session set time_zone = '+00:00'"));
    assert.ok(
      ORACLE_SESSION.some(
        (sql) => sql.includes("nls_timestamp_tz_format") && sql.includes("FF9TZH:TZM"),
      ),
    );
    const config = oracleDialect.knexConfig({
      client: "oracle",
      host: "db",
      port: null,
      database: "ORCLPDB1",
      filename: "",
      ssl: null,
      poolMin: 0,
      poolMax: 4,
      poolIdleMs: 30_000,
      statementTimeoutMs: 0,
      user: "u",
      password: "p",
      connectTimeoutMs: 10_000,
    });
    const connection = config.connection as { connectString: string };
    assert.equal(connection.connectString, "db:1521/ORCLPDB1");
    // What knex hands to node-oracledb per query: numbers, dates and CLOBs as text.
    const client = knexFactory(config);
    const asString = (client.client as { fetchAsString: unknown[] }).fetchAsString.map(String);
    void client.destroy();
    assert.equal(asString.length, 3, `knex would fetch as text: ${asString.join(", ")}`);
    assert.ok(asString.some((t) => /NUMBER/.test(t)));
    assert.ok(asString.some((t) => /CLOB/.test(t)));
    const zoned = { name: "t", type: "timestamp(6) with time zone", nullable: true };
    assert.equal(
      oracleDialect.fromDb!(zoned, "2026-05-01T10:00:00.123456789+00:00"),
      "2026-05-01T10:00:00.123456789Z",
    );
  });

  it("Oracle: binding a timestamp gives text the session formats parse, per column type", () => {
    const at = (type: string, value: string) =>
      oracleDialect.toDbValue({ name: "t", type, nullable: true }, value);
    assert.equal(
      at("timestamp(6)", "2026-05-01T12:00:00.123456+02:00"),
      "2026-05-01T10:00:00.123456",
    );
    assert.equal(
      at("timestamp(9)", "2026-05-01T10:00:00.123456789Z"),
      "2026-05-01T10:00:00.123456789",
    );
    assert.equal(
      at("timestamp(6) with time zone", "2026-05-01T10:00:00.5Z"),
      "2026-05-01T10:00:00.5+00:00",
    );
    assert.equal(at("date", "2026-05-01T10:00:07Z"), "2026-05-01T10:00:07");
    assert.equal(at("varchar2(40)", "2026-05-01T10:00:00Z"), "2026-05-01T10:00:00Z");
  });
});
