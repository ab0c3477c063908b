import assert from "node:assert/strict";
import net from "node:net";
import { DbConnection, parseSettings } from "../../nodes/lib/db/connection";
import { TributaryError } from "../../nodes/lib/db/errors";

/** A port on this machine with nothing listening. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe("driver errors through the real clients", function () {
  this.timeout(30_000);

  for (const client of ["pg", "mysql", "mssql", "oracle"] as const) {
    it(`${client}: a refused connection names host, port and the fix, and no password`, async () => {
      const port = await closedPort();
      const settings = parseSettings(
        { client, host: "127.0.0.1", port: String(port), database: "sales", connectTimeout: 5 },
        { user: "sync", password: "hunter2-secret" },
      );
      const connection = new DbConnection(settings);
      try {
        await assert.rejects(connection.test(), (err: Error) => {
          assert.ok(err instanceof TributaryError, `not classified: ${err.message}`);
          assert.equal(err.code, "refused", err.message);
          assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
          assert.match(err.message, /check host and port/);
          assert.doesNotMatch(err.message, /hunter2-secret/);
          return true;
        });
      } finally {
        await connection.close();
      }
    });
  }

  it("pg: a host that does not resolve is reported as such", async () => {
    const connection = new DbConnection(
      parseSettings({
        client: "pg",
        host: "no-such-host.invalid",
        database: "x",
        connectTimeout: 5,
      }),
    );
    try {
      await assert.rejects(connection.test(), (err: Error) => {
        assert.equal((err as TributaryError).code, "host-not-found", err.message);
        return true;
      });
    } finally {
      await connection.close();
    }
  });
});

describe("connection problems on the local servers are classified with the fix", function () {
  this.timeout(30_000);
  const cases: Array<{
    name: string;
    config: Record<string, unknown>;
    user: string;
    password?: string;
    code: string;
    text: RegExp;
  }> = [
    {
      name: "pg: SSL required but the server has none",
      config: { client: "pg", database: "test", ssl: "require" },
      user: "postgres",
      code: "ssl",
      text: /turn SSL on or off/,
    },
    {
      name: "mysql: SSL verify but the server has none",
      config: { client: "mysql", database: "test", ssl: "verify" },
      user: "root",
      code: "ssl",
      text: /turn SSL on or off/,
    },
    {
      name: "pg: unknown role",
      config: { client: "pg", database: "test" },
      user: "no_such_role",
      code: "auth-failed",
      text: /check user and password/,
    },
    {
      name: "pg: database does not exist",
      config: { client: "pg", database: "no_such_db" },
      user: "postgres",
      code: "database-not-found",
      text: /check the database field/,
    },
    {
      name: "mysql: database does not exist",
      config: { client: "mysql", database: "no_such_db" },
      user: "root",
      password: "",
      code: "database-not-found",
      text: /check the database field/,
    },
    {
      name: "mysql: unknown user",
      config: { client: "mysql", database: "test" },
      user: "no_such_user",
      code: "auth-failed",
      text: /check user and password/,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const connection = new DbConnection(
        parseSettings(
          { host: "127.0.0.1", ...c.config },
          { user: c.user, password: c.password ?? "pw-not-shown" },
        ),
      );
      try {
        await assert.rejects(connection.test(), (err: Error) => {
          assert.equal((err as TributaryError).code, c.code, err.message);
          assert.match(err.message, c.text);
          assert.doesNotMatch(err.message, /pw-not-shown/);
          return true;
        });
      } finally {
        await connection.close();
      }
    });
  }

  it("a statement past the statement timeout is cancelled by the server", async () => {
    const connection = new DbConnection(
      parseSettings(
        { client: "pg", host: "127.0.0.1", database: "test", statementTimeout: 1 },
        { user: "postgres" },
      ),
    );
    try {
      await assert.rejects(connection.knex().raw("select pg_sleep(3)"), /statement timeout/);
    } finally {
      await connection.close();
    }
  });

  it("rejects an unknown ssl mode naming the choices", () => {
    assert.throws(
      () => parseSettings({ client: "pg", ssl: "maybe" }),
      /ssl "maybe" is not valid: choose disable, require or verify/,
    );
  });
});
