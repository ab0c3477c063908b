import assert from "node:assert/strict";
import { CrmHttp, retryAfterMs, type CrmHttpOptions } from "../../nodes/lib/crm/http";
import { hubspotThrottleMs } from "../../nodes/lib/crm/hubspot";
import { pipedriveThrottleMs } from "../../nodes/lib/crm/pipedrive";
import { TributaryError } from "../../nodes/lib/db/errors";
import { HttpFake, type FakeReply, type FakeRequest } from "../fakes/http-fake";

/** A bare API: accepts one Bearer token; /echo answers 400 quoting what it was sent. */
class ApiFake extends HttpFake {
  validToken = "good-token";
  /** Sent with every 200 (rate-limit headers). */
  replyHeaders: Record<string, string> = {};
  protected handle(req: FakeRequest): FakeReply {
    if (req.headers.authorization !== `Bearer ${this.validToken}`)
      return { status: 401, body: { message: "token expired" } };
    if (req.path === "/echo")
      return {
        status: 400,
        body: { message: `bad request with ${req.headers.authorization} and ${req.query}` },
      };
    return { status: 200, body: { ok: true, path: req.path }, headers: this.replyHeaders };
  }
  protected errorBody(status: number, message: string): unknown {
    return { message: `${message} (status ${status})` };
  }
}

describe("CRM HTTP client (real axios against a local server)", function () {
  let fake: ApiFake;
  let token: string;
  let refreshes: number;

  function client(extra: Partial<CrmHttpOptions> = {}): CrmHttp {
    return new CrmHttp({
      provider: "TestCRM",
      baseUrl: fake.url,
      maxConcurrency: 4,
      authHeaders: () => ({ Authorization: `Bearer ${token}` }),
      secrets: () => [token, "good-token", "s3cret-api-token"],
      baseDelayMs: 20,
      maxDelayMs: 5_000,
      ...extra,
    });
  }

  beforeEach(async () => {
    fake = new ApiFake();
    await fake.start();
    token = "good-token";
    refreshes = 0;
  });
  afterEach(() => fake.stop());

  it("keeps inside the provider's limits from its rate-limit headers, before any 429", async () => {
    const gapAfter = async (
      headers: Record<string, string>,
      throttleMs: CrmHttpOptions["throttleMs"],
    ) => {
      fake.replyHeaders = headers;
      const http = client({ throttleMs });
      await http.request({ method: "GET", url: "/a" });
      const first = Date.now();
      await http.request({ method: "GET", url: "/b" });
      return Date.now() - first;
    };
    // HubSpot: nothing left this second → the next call waits a second.
    const secondly = await gapAfter(
      { "x-hubspot-ratelimit-secondly-remaining": "0", "x-hubspot-ratelimit-remaining": "90" },
      hubspotThrottleMs,
    );
    assert.ok(secondly >= 950, `HubSpot secondly limit: waited ${secondly} ms`);
    // HubSpot: the rolling interval is spent → wait for the interval it names.
    const rolling = await gapAfter(
      {
        "x-hubspot-ratelimit-remaining": "0",
        "x-hubspot-ratelimit-interval-milliseconds": "600",
      },
      hubspotThrottleMs,
    );
    assert.ok(rolling >= 550 && rolling < 950, `HubSpot interval: waited ${rolling} ms`);
    // Pipedrive: no request left in the window → wait until it resets.
    const pipedrive = await gapAfter(
      { "x-ratelimit-remaining": "0", "x-ratelimit-reset": "1" },
      pipedriveThrottleMs,
    );
    assert.ok(pipedrive >= 950, `Pipedrive reset: waited ${pipedrive} ms`);
    // Calls left: no wait at all.
    const free = await gapAfter(
      { "x-hubspot-ratelimit-secondly-remaining": "7", "x-ratelimit-remaining": "40" },
      hubspotThrottleMs,
    );
    assert.ok(free < 300, `waited ${free} ms with calls left`);
    assert.equal(fake.requests("GET", "/b").length, 4);
  });

  it("waits for Retry-After on a 429, then succeeds", async () => {
    fake.rateLimit(1, 1);
    const http = client();
    const started = Date.now();
    const data = await http.request<{ ok: boolean }>({ method: "GET", url: "/contacts" });
    assert.equal(data.ok, true);
    assert.ok(Date.now() - started >= 950, `waited only ${Date.now() - started} ms`);
    assert.equal(http.stats.rateLimited, 1);
    assert.equal(fake.requests("GET", "/contacts").length, 2);
  });

  it("pauses the whole connection during Retry-After, not just the call that got the 429", async () => {
    fake.rateLimit(1, 1, (r) => r.path === "/a");
    const http = client();
    const first = http.request({ method: "GET", url: "/a" });
    await new Promise((r) => setTimeout(r, 100)); // the 429 has arrived
    const started = Date.now();
    await http.request({ method: "GET", url: "/b" });
    assert.ok(Date.now() - started >= 700, "a second call went out during the pause");
    await first;
  });

  it("retries 5xx with backoff and succeeds", async () => {
    fake.injectFault({ kind: "status", status: 503 }, 2);
    const http = client();
    const data = await http.request<{ ok: boolean }>({ method: "GET", url: "/x" });
    assert.equal(data.ok, true);
    assert.deepEqual(
      fake.requests("GET", "/x").map((r) => r.status),
      [503, 503, 200],
    );
  });

  it("gives up after maxAttempts with the provider's message and the attempt count", async () => {
    fake.injectFault({ kind: "status", status: 502, body: { message: "upstream is down" } }, 10);
    const http = client({ maxAttempts: 3 });
    await assert.rejects(http.request({ method: "GET", url: "/x" }), (err: TributaryError) => {
      assert.ok(err instanceof TributaryError);
      assert.equal(err.code, "unavailable");
      assert.match(err.message, /TestCRM GET \/x: HTTP 502/);
      assert.match(err.message, /after 3 attempts/);
      assert.match(err.message, /upstream is down/);
      return true;
    });
    assert.equal(fake.requests("GET", "/x").length, 3);
  });

  it("does not retry a create (non-idempotent POST) after a 5xx, which may have created it", async () => {
    fake.injectFault({ kind: "status", status: 500 }, 1);
    const http = client();
    await assert.rejects(http.request({ method: "POST", url: "/create", data: {} }), /HTTP 500/);
    assert.equal(fake.requests("POST", "/create").length, 1);
  });

  it("retries a dropped connection on an idempotent call", async () => {
    fake.injectFault({ kind: "drop" }, 1);
    const http = client();
    const data = await http.request<{ ok: boolean }>({ method: "GET", url: "/y" });
    assert.equal(data.ok, true);
    assert.equal(fake.requests("GET", "/y").length, 2);
  });

  it("on a 401 refreshes the token once and retries the call", async () => {
    token = "expired-token";
    const http = client({
      refresh: async () => {
        refreshes += 1;
        token = "good-token";
      },
    });
    const data = await http.request<{ ok: boolean }>({ method: "GET", url: "/z" });
    assert.equal(data.ok, true);
    assert.equal(refreshes, 1);
    assert.deepEqual(
      fake.requests("GET", "/z").map((r) => r.status),
      [401, 200],
    );
  });

  it("never loops on 401: one refresh, one retry, then an auth error without the token", async () => {
    token = "expired-token";
    const http = client({
      refresh: async () => {
        refreshes += 1;
        token = "still-bad-token";
      },
      secrets: () => [token, "expired-token"],
    });
    await assert.rejects(http.request({ method: "GET", url: "/z" }), (err: TributaryError) => {
      assert.equal(err.code, "auth-failed");
      assert.doesNotMatch(err.message, /still-bad-token|expired-token/);
      return true;
    });
    assert.equal(refreshes, 1);
    assert.equal(fake.requests("GET", "/z").length, 2);
  });

  it("shares one refresh among concurrent calls that all got a 401", async () => {
    token = "expired-token";
    const http = client({
      refresh: async () => {
        refreshes += 1;
        await new Promise((r) => setTimeout(r, 50));
        token = "good-token";
      },
    });
    await Promise.all([1, 2, 3, 4].map((i) => http.request({ method: "GET", url: `/p${i}` })));
    assert.equal(refreshes, 1);
  });

  it("keeps at most maxConcurrency calls at the provider", async () => {
    fake.latencyMs = 40;
    const http = client({ maxConcurrency: 3 });
    await Promise.all(
      Array.from({ length: 12 }, (_, i) => http.request({ method: "GET", url: `/c${i}` })),
    );
    assert.equal(fake.maxInFlight, 3);
    assert.equal(fake.log.length, 12);
  });

  it("scrubs tokens and query strings out of errors", async () => {
    const http = client();
    await assert.rejects(
      http.request({ method: "GET", url: "/echo", params: { api_token: "s3cret-api-token" } }),
      (err: TributaryError) => {
        assert.equal(err.code, "rejected");
        assert.match(err.message, /TestCRM GET \/echo: HTTP 400/);
        assert.doesNotMatch(err.message, /good-token|s3cret-api-token/);
        assert.match(err.message, /\*\*\*/);
        return true;
      },
    );
  });

  it("names a refused connection with the fix", async () => {
    const url = fake.url;
    await fake.stop();
    const http = new CrmHttp({
      provider: "TestCRM",
      baseUrl: url,
      maxConcurrency: 1,
      authHeaders: () => ({}),
      secrets: () => [],
      maxAttempts: 2,
      baseDelayMs: 10,
    });
    await assert.rejects(http.request({ method: "GET", url: "/x" }), (err: TributaryError) => {
      assert.equal(err.code, "network");
      assert.match(err.message, /refused: check the base URL/);
      return true;
    });
    await fake.start();
  });

  it("reads Retry-After as seconds or as an HTTP date", () => {
    assert.equal(retryAfterMs("2"), 2000);
    const now = Date.parse("2026-01-01T00:00:00Z");
    assert.equal(retryAfterMs("Thu, 01 Jan 2026 00:00:03 GMT", now), 3000);
    assert.equal(retryAfterMs("soon"), null);
    assert.equal(retryAfterMs(undefined), null);
  });
});
