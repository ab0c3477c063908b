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
      parseSettings({ client: "pg", host: "no-such-host.invalid", database: "x", connectTimeout: 5 }),
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
