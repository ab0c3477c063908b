/**
 * Settings as analysts write them in flow JSON: `${ENV_VAR}` references and the
 * readers of node properties, whose errors must name the field and the fix.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { missingEnv, resolveEnv } from "../../nodes/lib/env";
import { listOfNames, oneOf, requiredText, wholeNumber } from "../../nodes/lib/node-config";
import { parseSettings } from "../../nodes/lib/db/connection";
import { TributaryError } from "../../nodes/lib/db/errors";

/** Asserts that `fn` throws a config TributaryError whose message matches every pattern. */
function throwsConfig(fn: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(fn, (err: Error) => {
    assert.ok(err instanceof TributaryError, `not a TributaryError: ${err.message}`);
    assert.equal(err.code, "config");
    for (const pattern of patterns) assert.match(err.message, pattern);
    return true;
  });
}

describe("env: ${ENV_VAR} in connection settings", () => {
  const env = { PGHOST_TEST: "db.internal", EMPTY_TEST: "", PORT_TEST: "6543" };

  it("replaces whole values and references inside text", () => {
    assert.equal(resolveEnv("${PGHOST_TEST}", env), "db.internal");
    assert.equal(
      resolveEnv("postgres://${PGHOST_TEST}:${PORT_TEST}/x", env),
      "postgres://db.internal:6543/x",
    );
    assert.equal(resolveEnv("no references", env), "no references");
  });

  it("leaves $VAR without braces and ${} that is not a name alone", () => {
    assert.equal(resolveEnv("$PGHOST_TEST ${1ABC} ${}", env), "$PGHOST_TEST ${1ABC} ${}");
  });

  it("reads process.env by default", () => {
    process.env.TRIBUTARY_CONFIG_TEST_VAR = "from-process";
    try {
      assert.equal(resolveEnv("x-${TRIBUTARY_CONFIG_TEST_VAR}"), "x-from-process");
      assert.deepEqual(missingEnv("${TRIBUTARY_CONFIG_TEST_VAR}"), []);
    } finally {
      delete process.env.TRIBUTARY_CONFIG_TEST_VAR;
    }
  });

  it("missingEnv names every unset variable, and an empty one is set", () => {
    assert.deepEqual(missingEnv("${PGHOST_TEST}/${NOPE_A}-${NOPE_B}", env), ["NOPE_A", "NOPE_B"]);
    assert.deepEqual(missingEnv("${EMPTY_TEST}", env), []);
    assert.deepEqual(missingEnv("plain", env), []);
  });
});

describe("node-config: property readers name the field", () => {
  it("listOfNames accepts an array or comma-separated text, trimmed", () => {
    assert.deepEqual(listOfNames([" id ", "region"], "key columns", true), ["id", "region"]);
    assert.deepEqual(listOfNames("id, region,", "key columns", true), ["id", "region"]);
    assert.deepEqual(listOfNames(undefined, "fields", false), []);
  });

  it("listOfNames reports an empty required list by its field name", () => {
    throwsConfig(() => listOfNames([], "key columns", true), /^key columns is empty/, /e\.g\. id/);
    throwsConfig(() => listOfNames(" , ", "key columns", true), /key columns is empty/);
    throwsConfig(() => listOfNames(undefined, "key columns", true), /key columns is empty/);
  });

  it("requiredText trims and names the field with an example", () => {
    assert.equal(requiredText("  customers ", "table", "e.g. customers"), "customers");
    throwsConfig(
      () => requiredText("  ", "table", "choose the table"),
      /^table is empty: choose the table/,
    );
    throwsConfig(() => requiredText(42, "table", "choose the table"), /table is empty/);
  });

  it("wholeNumber takes the default when empty and names the field when wrong", () => {
    assert.equal(wholeNumber(undefined, "batch size", 1000), 1000);
    assert.equal(wholeNumber("", "batch size", 1000), 1000);
    assert.equal(wholeNumber("250", "batch size", 1000), 250);
    assert.equal(wholeNumber(0, "look-back", 5, 0), 0);
    throwsConfig(
      () => wholeNumber("abc", "batch size", 1000),
      /batch size "abc" must be a whole number of at least 1/,
    );
    throwsConfig(() => wholeNumber("1.5", "batch size", 1000), /batch size "1.5"/);
    throwsConfig(() => wholeNumber(0, "batches in flight", 2), /batches in flight "0"/);
  });

  it("oneOf lists the choices", () => {
    assert.equal(
      oneOf(undefined, "mode", ["full", "incremental"] as const, "incremental"),
      "incremental",
    );
    assert.equal(oneOf("full", "mode", ["full", "incremental"] as const, "incremental"), "full");
    throwsConfig(
      () => oneOf("sometimes", "mode", ["full", "incremental"] as const, "incremental"),
      /mode "sometimes" is not valid: choose full, incremental/,
    );
  });
});

describe("parseSettings: a db-connection's properties", () => {
  const set: string[] = [];
  function setEnv(name: string, value: string): void {
    process.env[name] = value;
    set.push(name);
  }
  afterEach(() => {
    for (const name of set.splice(0)) delete process.env[name];
  });

  it("names the client when it is not supported", () => {
    throwsConfig(
      () => parseSettings({ client: "postgres" }),
      /client "postgres" is not supported/,
      /pg, mysql/,
    );
  });

  for (const port of ["99999", "abc", "0", "5432.5"]) {
    it(`names the port field for port ${JSON.stringify(port)}`, () => {
      throwsConfig(
        () => parseSettings({ client: "pg", port }),
        new RegExp(`port "${port.replace(".", "\\.")}" is not a port number`),
      );
    });
  }

  it("reads host, port and database from environment variables the editor's typed inputs name", () => {
    setEnv("TRIB_T_HOST", "db.internal");
    setEnv("TRIB_T_PORT", "6543");
    setEnv("TRIB_T_DB", "sales");
    const s = parseSettings({
      client: "pg",
      host: "TRIB_T_HOST",
      hostType: "env",
      port: "TRIB_T_PORT",
      portType: "env",
      database: "TRIB_T_DB",
      databaseType: "env",
    });
    assert.deepEqual([s.host, s.port, s.database], ["db.internal", 6543, "sales"]);
    // The same text typed as a string is the value itself.
    assert.equal(
      parseSettings({ client: "pg", host: "TRIB_T_HOST", hostType: "str" }).host,
      "TRIB_T_HOST",
    );
  });

  it("names an unset variable of an env-typed field, and a malformed name", () => {
    throwsConfig(
      () => parseSettings({ client: "pg", port: "TRIB_T_NOT_SET", portType: "env" }),
      /environment variable TRIB_T_NOT_SET is not set/,
    );
    throwsConfig(
      () => parseSettings({ client: "pg", host: "db.example.com", hostType: "env" }),
      /host: "db\.example\.com" is not an environment variable name/,
    );
  });

  it("accepts an empty port (the client's default)", () => {
    assert.equal(parseSettings({ client: "mysql", port: "" }).port, null);
    assert.equal(parseSettings({ client: "mysql", port: 3307 }).port, 3307);
  });

  it("names the filename for SQLite without one, and resolves it against the user directory", () => {
    throwsConfig(() => parseSettings({ client: "sqlite" }), /filename is empty/);
    const settings = parseSettings(
      { client: "sqlite", filename: "data/a.sqlite" },
      {},
      "/srv/nodered",
    );
    assert.equal(settings.filename, path.resolve("/srv/nodered", "data/a.sqlite"));
  });

  it("names pool size and connect timeout when they are not whole numbers", () => {
    throwsConfig(() => parseSettings({ client: "pg", poolMax: "0" }), /pool size "0"/);
    throwsConfig(
      () => parseSettings({ client: "pg", connectTimeout: "soon" }),
      /connect timeout "soon"/,
    );
  });

  it("resolves ${ENV_VAR} in host, port, database, filename and credentials", () => {
    setEnv("TRIB_CFG_HOST", "db.example.internal");
    setEnv("TRIB_CFG_PORT", "6432");
    setEnv("TRIB_CFG_DB", "sales");
    setEnv("TRIB_CFG_USER", "sync");
    setEnv("TRIB_CFG_PASSWORD", "s3cret-from-env");
    setEnv("TRIB_CFG_DIR", "/var/lib/tributary");
    const pg = parseSettings(
      {
        client: "pg",
        host: "${TRIB_CFG_HOST}",
        port: "${TRIB_CFG_PORT}",
        database: "${TRIB_CFG_DB}_eu",
      },
      { user: "${TRIB_CFG_USER}", password: "${TRIB_CFG_PASSWORD}" },
    );
    assert.equal(pg.host, "db.example.internal");
    assert.equal(pg.port, 6432);
    assert.equal(pg.database, "sales_eu");
    assert.equal(pg.user, "sync");
    assert.equal(pg.password, "s3cret-from-env");
    const sqlite = parseSettings({ client: "sqlite", filename: "${TRIB_CFG_DIR}/state.sqlite" });
    assert.equal(sqlite.filename, "/var/lib/tributary/state.sqlite");
  });

  it("names a referenced variable that is not set, in properties and in credentials", () => {
    throwsConfig(
      () => parseSettings({ client: "pg", host: "${TRIB_CFG_NOT_SET_HOST}" }),
      /environment variable TRIB_CFG_NOT_SET_HOST is not set/,
    );
    throwsConfig(
      () => parseSettings({ client: "sqlite", filename: "${TRIB_CFG_NOT_SET_DIR}/a.sqlite" }),
      /TRIB_CFG_NOT_SET_DIR/,
    );
    throwsConfig(
      () =>
        parseSettings(
          { client: "pg", host: "h" },
          { user: "u", password: "${TRIB_CFG_NOT_SET_PW}" },
        ),
      /TRIB_CFG_NOT_SET_PW/,
    );
  });
});
