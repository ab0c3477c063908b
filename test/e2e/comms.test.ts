/** The editor's websocket (comms) works through fastify's server, behind the login. */
import assert from "node:assert/strict";
import path from "node:path";
import WebSocket from "ws";
import { cli, kill, spawnUntil, tempDir, type Started } from "./support";

describe("hosted runtime: editor websocket", function () {
  this.timeout(60_000);
  let server: Started | undefined;

  before(async () => {
    server = await spawnUntil(
      [cli, "start"],
      {
        PORT: "0",
        TRIBUTARY_USER_DIR: path.join(tempDir("tributary-ws-"), "user"),
        TRIBUTARY_ADMIN_PASSWORD: "ws-pass",
      },
      /Tributary is running: (http:\/\/[^/\s]+)\//,
    );
  });

  after(() => kill(server?.child));

  it("accepts a logged-in editor on /comms and answers its auth", async () => {
    const res = await fetch(`${server!.url}/auth/token`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        client_id: "node-red-editor",
        grant_type: "password",
        scope: "*",
        username: "admin",
        password: "ws-pass",
      }),
    });
    const { access_token: token } = (await res.json()) as { access_token: string };
    const ws = new WebSocket(`${server!.url.replace("http", "ws")}/comms`);
    const reply = await new Promise<string>((resolve, reject) => {
      ws.on("open", () => ws.send(JSON.stringify({ auth: token })));
      ws.on("message", (data) => resolve(data.toString()));
      ws.on("error", reject);
      setTimeout(() => reject(new Error("no answer on /comms")), 10_000);
    });
    ws.close();
    assert.deepEqual(JSON.parse(reply), { auth: "ok" });
  });
});
