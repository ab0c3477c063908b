/**
 * The CRM nodes in Node-RED (node-red-node-test-helper): the connection's admin
 * routes (Test connection of an undeployed form and of a deployed node, object and
 * field pickers), configuration errors that name the field, and a crm-source started
 * from the management API — against the HubSpot and Pipedrive fakes.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { helper, useTempUserDir, waitForStatus, type HelperNode } from "../support/red";
import { closeStateStores } from "../../nodes/lib/state-store";
import { sources } from "../../nodes/lib/sources";
import { HubSpotFake } from "../fakes/hubspot";
import { PipedriveFake } from "../fakes/pipedrive";

const dist = path.resolve(__dirname, "..", "..", "nodes");
// eslint-disable-next-line @typescript-eslint/no-require-imports
const load = (name: string) => require(path.join(dist, name, `${name}.js`)) as unknown;
const nodes = [load("crm-connection"), load("crm-source"), load("upsert"), load("audit-log")];

interface Agent {
  post(url: string): Agent;
  get(url: string): Agent;
  send(body: unknown): Promise<{ status: number; body: Record<string, unknown> }>;
  then: Promise<{ status: number; body: Record<string, unknown> }>["then"];
}
const request = () => (helper as unknown as { request(): Agent }).request();

const HS_TOKEN = "pat-nodes-test-token";
const PD_TOKEN = "pd-nodes-test-token";

describe("CRM nodes: connection routes, configuration errors, runs", function () {
  this.timeout(30_000);
  let hubspot: HubSpotFake;
  let pipedrive: PipedriveFake;

  before(async () => {
    useTempUserDir();
    hubspot = new HubSpotFake({ token: HS_TOKEN });
    pipedrive = new PipedriveFake({ apiToken: PD_TOKEN });
    await hubspot.start();
    await pipedrive.start();
  });
  after(async () => {
    await closeStateStores();
    await hubspot.stop();
    await pipedrive.stop();
  });
  afterEach(() => helper.unload());

  function flow() {
    return [
      {
        id: "hs",
        type: "tributary-crm-connection",
        provider: "hubspot",
        authType: "token",
        baseUrl: hubspot.url,
      },
      {
        id: "pd",
        type: "tributary-crm-connection",
        provider: "pipedrive",
        authType: "token",
        baseUrl: pipedrive.url,
      },
      {
        id: "src",
        type: "tributary-crm-source",
        connection: "pd",
        object: "persons",
        fields: ["name"],
        mode: "incremental",
        batchSize: 100,
        wires: [["log"], ["summary"]],
      },
      { id: "log", type: "tributary-audit-log", wires: [] },
      { id: "summary", type: "helper" },
    ];
  }
  const credentials = { hs: { token: HS_TOKEN }, pd: { token: PD_TOKEN } };

  it("Test connection of an undeployed form: who, which portal, limits; the stored token when unchanged", async () => {
    await helper.load(nodes, flow(), credentials);
    const fresh = await request()
      .post("/tributary/crm/connections/test")
      .send({
        config: { provider: "hubspot", authType: "token", baseUrl: hubspot.url },
        credentials: { token: HS_TOKEN },
      });
    assert.equal(fresh.status, 200);
    assert.equal(fresh.body.ok, true);
    assert.equal(fresh.body.user, "private app");
    assert.equal(fresh.body.org, "portal 62515 (app-eu1.hubspot.com)");
    assert.match(String(fresh.body.limits), /daily API calls/);
    // The editor sends __PWRD__ for a secret the user did not retype.
    const unchanged = await request()
      .post("/tributary/crm/connections/test")
      .send({
        id: "hs",
        config: { provider: "hubspot", authType: "token", baseUrl: hubspot.url },
        credentials: { token: "__PWRD__" },
      });
    assert.equal(unchanged.body.ok, true);
  });

  it("a failing test says why, without the token; a bad form is a 400 naming the field", async () => {
    await helper.load(nodes, flow(), credentials);
    const wrong = await request()
      .post("/tributary/crm/connections/test")
      .send({
        config: { provider: "pipedrive", authType: "token", baseUrl: pipedrive.url },
        credentials: { token: "pd-typo-token" },
      });
    assert.equal(wrong.status, 200);
    assert.equal(wrong.body.ok, false);
    const error = wrong.body.error as { code: string; message: string };
    assert.equal(error.code, "auth-failed");
    assert.doesNotMatch(JSON.stringify(wrong.body), /pd-typo-token/);
    const empty = await request()
      .post("/tributary/crm/connections/test")
      .send({ config: { provider: "hubspot", authType: "token" }, credentials: {} });
    assert.equal(empty.status, 400);
    assert.match((empty.body.error as { message: string }).message, /token is empty/);
    const unknown = await request()
      .post("/tributary/crm/connections/test")
      .send({ config: { provider: "dynamics" }, credentials: {} });
    assert.match(
      (unknown.body.error as { message: string }).message,
      /provider "dynamics" is not supported: choose salesforce, hubspot, pipedrive, zoho/,
    );
  });

  it("Salesforce and Zoho are loaded through the same factory (their own files)", async () => {
    await helper.load(nodes, flow(), credentials);
    const zoho = await request()
      .post("/tributary/crm/connections/test")
      .send({
        config: { provider: "zoho", authType: "oauth2", baseUrl: "http://127.0.0.1:9" },
        credentials: { clientId: "zoho-client", clientSecret: "zoho-secret" },
      });
    assert.equal(zoho.body.ok, false);
    const message = (zoho.body.error as { message: string }).message;
    assert.doesNotMatch(message, /not available in this version/);
    // Zoho asked the token store for its tokens: no credential secret in this runtime.
    assert.match(message, /credential secret/);
  });

  it("a deployed connection: test, objects and fields for the pickers; 404 for an unknown id", async () => {
    await helper.load(nodes, flow(), credentials);
    const tested = await request().post("/tributary/crm/connections/pd/test").send({});
    assert.equal(tested.body.ok, true);
    assert.equal(tested.body.user, "ana@example.com");
    const objects = await request().get("/tributary/crm/connections/hs/objects");
    assert.deepEqual(
      (objects.body.objects as Array<{ name: string }>).map((o) => o.name),
      ["contacts", "companies", "deals", "tickets", "2-123456"],
    );
    const fields = await request().get("/tributary/crm/connections/hs/objects/contacts/fields");
    assert.equal(fields.body.idField, "id");
    assert.equal(fields.body.modifiedField, "lastmodifieddate");
    assert.ok((fields.body.fields as Array<{ name: string }>).some((f) => f.name === "email"));
    const missing = await request().get("/tributary/crm/connections/nope/objects");
    assert.equal(missing.status, 404);
    assert.match((missing.body.error as { message: string }).message, /deploy it first/);
  });

  it("the generic connection routes of DESIGN §5 answer for a CRM connection too", async () => {
    await helper.load(nodes, flow(), credentials);
    const form = await request()
      .post("/tributary/connections/test")
      .send({
        type: "tributary-crm-connection",
        config: { provider: "hubspot", authType: "token", baseUrl: hubspot.url },
        credentials: { token: HS_TOKEN },
      });
    assert.equal(form.body.ok, true);
    assert.equal(form.body.org, "portal 62515 (app-eu1.hubspot.com)");
    const tested = await request().post("/tributary/connections/pd/test").send({});
    assert.equal(tested.body.user, "ana@example.com");
    const schema = await request().get("/tributary/connections/hs/schema");
    assert.ok((schema.body.objects as Array<{ name: string }>).some((o) => o.name === "contacts"));
    const fields = await request().get("/tributary/connections/hs/schema/contacts");
    assert.equal(fields.body.modifiedField, "lastmodifieddate");
    assert.ok((fields.body.fields as Array<{ name: string }>).some((f) => f.name === "email"));
  });

  it("a connection missing its token shows the field to fix on the source", async () => {
    await helper.load(nodes, flow(), { hs: { token: HS_TOKEN }, pd: {} });
    const src = helper.getNode("src") as HelperNode;
    const text = await waitForStatus(src, (t) => /token is empty/.test(t));
    assert.match(text, /token is empty/);
  });

  it("a misspelt field fails at deploy with the object's name", async () => {
    const f = flow();
    (f[2] as { fields: string[] }).fields = ["name", "emial"];
    await helper.load(nodes, f, credentials);
    const src = helper.getNode("src") as HelperNode;
    await waitForStatus(src, (t) => /no field "emial"/.test(t));
  });

  it("runs from the management API and reports a summary on output 2", async () => {
    pipedrive.seed("persons", [{ name: "Ada" }, { name: "Grace" }, { name: "Linus" }]);
    await helper.load(nodes, flow(), credentials);
    const summaryNode = helper.getNode("summary") as HelperNode;
    const summary = new Promise<Record<string, unknown>>((resolve) =>
      summaryNode.on("input", (msg: Record<string, unknown>) =>
        resolve(msg.payload as Record<string, unknown>),
      ),
    );
    const started = await request().post("/tributary/sources/src/run").send({});
    assert.equal(started.status, 202);
    assert.ok(started.body.runId);
    const done = await summary;
    assert.equal(done.status, "succeeded");
    assert.equal((done.counts as { read: number }).read, 3);
    assert.equal(sources.get("src")?.type, "tributary-crm-source");
  });
});
