/**
 * Lossless timestamp text (DESIGN.md §3): what PostgreSQL and MySQL return becomes
 * ISO 8601 with every fractional digit, and ISO text becomes the UTC wall clock a
 * zone-less column stores, without a JavaScript Date touching the microseconds.
 */
import assert from "node:assert/strict";
import { isoTimestamp, utcWallClock } from "../../nodes/lib/db/values";

describe("isoTimestamp: database timestamp text as ISO 8601", () => {
  const cases: Array<[string, string | null | undefined, string, string]> = [
    // [what the database returns, assumed offset, expected, what it is]
    [
      "2026-11-01 10:00:00.1234+00",
      undefined,
      "2026-11-01T10:00:00.1234Z",
      "PostgreSQL timestamptz in UTC",
    ],
    [
      "2026-11-01 10:00:00.123456+00",
      undefined,
      "2026-11-01T10:00:00.123456Z",
      "microseconds kept",
    ],
    [
      "2026-11-01 10:00:00.5+05:30",
      undefined,
      "2026-11-01T10:00:00.5+05:30",
      "offset with minutes",
    ],
    [
      "2026-11-01 10:00:00.25-07",
      undefined,
      "2026-11-01T10:00:00.25-07:00",
      "hour-only negative offset",
    ],
    ["2026-11-01 10:00:00+0530", undefined, "2026-11-01T10:00:00+05:30", "compact offset"],
    ["2026-11-01 10:00:00-00:00", undefined, "2026-11-01T10:00:00Z", "zero offset written out"],
    ["2026-11-01 10:00:00+00", undefined, "2026-11-01T10:00:00Z", "no fraction"],
    ["2026-11-01T10:00:00.000001Z", undefined, "2026-11-01T10:00:00.000001Z", "already ISO"],
    ["2026-11-01 10:00:00.1234", null, "2026-11-01T10:00:00.1234", "naive timestamp kept naive"],
    ["2026-11-01 10:00:00", null, "2026-11-01T10:00:00", "naive, no fraction"],
    ["2026-11-01 10:00:00.123456", undefined, "2026-11-01T10:00:00.123456Z", "naive read as UTC"],
    [
      "2026-11-01 10:00:00.5",
      "+02:00",
      "2026-11-01T10:00:00.5+02:00",
      "naive with an assumed zone",
    ],
    [
      "2026-11-01 10:00:00.120000",
      undefined,
      "2026-11-01T10:00:00.12Z",
      "MySQL DATETIME(6) trailing zeros",
    ],
    [
      "2026-11-01 10:00:00.000000",
      undefined,
      "2026-11-01T10:00:00Z",
      "MySQL DATETIME(6) whole second",
    ],
    ["2026-11-01 10:00:00.100000", null, "2026-11-01T10:00:00.1", "DATETIME(6) kept naive"],
  ];
  for (const [input, assume, expected, what] of cases) {
    it(`${what}: ${JSON.stringify(input)} → ${JSON.stringify(expected)}`, () => {
      const actual = assume === undefined ? isoTimestamp(input) : isoTimestamp(input, assume);
      assert.equal(actual, expected);
    });
  }

  it("PostgreSQL and MySQL text for the same instant give the same string", () => {
    assert.equal(
      isoTimestamp("2026-11-01 10:00:00.12+00"),
      isoTimestamp("2026-11-01 10:00:00.120000"),
    );
  });

  for (const text of ["infinity", "-infinity", "2020-01-01 00:00:00+00 BC", "yesterday", ""]) {
    it(`returns text it does not recognise unchanged: ${JSON.stringify(text)}`, () => {
      assert.equal(isoTimestamp(text), text);
    });
  }
});

describe("utcWallClock: ISO 8601 as the UTC wall clock of a zone-less column", () => {
  const cases: Array<[string, string, string]> = [
    ["2026-01-01T00:30:00.123456+01:00", "2025-12-31 23:30:00.123456", "back over a year boundary"],
    ["2026-12-31T22:00:00.5-03:00", "2027-01-01 01:00:00.500000", "forward over a year boundary"],
    ["2024-02-29T23:15:00.000001-02:00", "2024-03-01 01:15:00.000001", "leap day"],
    ["2026-06-15T12:00:00.999999+05:30", "2026-06-15 06:30:00.999999", "half-hour offset"],
    [
      "2026-06-15 12:00:00.25+0545",
      "2026-06-15 06:15:00.250000",
      "compact offset, database spacing",
    ],
    ["2026-06-15T12:00:00Z", "2026-06-15 12:00:00.000000", "UTC, no fraction"],
    ["2026-06-15T12:00:00.1234+00", "2026-06-15 12:00:00.123400", "+00"],
    ["2026-06-15T12:00:00.123456", "2026-06-15 12:00:00.123456", "naive text taken as UTC"],
    ["2026-06-15T12:00:00.123456000Z", "2026-06-15 12:00:00.123456", "nanoseconds that are zero"],
    [" 2026-06-15T12:00:00Z ", "2026-06-15 12:00:00.000000", "surrounding spaces"],
  ];
  for (const [input, expected, what] of cases) {
    it(`${what}: ${JSON.stringify(input)} → ${JSON.stringify(expected)}`, () => {
      assert.equal(utcWallClock(input), expected);
    });
  }

  it("keeps all six fractional digits where a Date would keep three", () => {
    const input = "2026-03-29T03:30:00.987654+02:00";
    assert.equal(new Date(input).toISOString(), "2026-03-29T01:30:00.987Z"); // what a Date does
    assert.equal(utcWallClock(input), "2026-03-29 01:30:00.987654");
  });

  it("round-trips with isoTimestamp for an instant with microseconds", () => {
    const wall = utcWallClock("2026-01-01T00:30:00.123456+01:00");
    assert.ok(wall);
    assert.equal(isoTimestamp(wall), "2025-12-31T23:30:00.123456Z");
  });

  for (const text of ["infinity", "not a date", "2026-06-15", "", "2026-06-15T12:00:00.1234567Z"]) {
    it(`returns null for what it cannot store exactly: ${JSON.stringify(text)}`, () => {
      assert.equal(utcWallClock(text), null);
    });
  }
});

describe("timestamp fast paths agree with the general parser", () => {
  // PostgreSQL's "+00" and ISO's "Z" take a slicing fast path; "+00:00" takes the
  // general one. For the same instant, both must give the same text.
  const instants: string[] = [];
  for (let i = 0; i < 500; i += 1) {
    const when = new Date(
      Date.UTC(1990 + (i % 60), i % 12, 1 + (i % 28), i % 24, (i * 7) % 60, (i * 13) % 60),
    );
    const digits = String((i * 7919) % 1_000_000)
      .padStart(6, "0")
      .slice(0, i % 7);
    instants.push(`${when.toISOString().slice(0, 19)}${digits ? `.${digits}` : ""}`);
  }
  it("isoTimestamp: 'YYYY-MM-DD HH:MM:SS.ffffff+00' as with '+00:00'", () => {
    for (const t of instants) {
      const pgText = t.replace("T", " ");
      assert.equal(isoTimestamp(`${pgText}+00`), isoTimestamp(`${pgText}+00:00`), pgText);
    }
  });
  it("isoTimestamp: a wall clock 'YYYY-MM-DD HH:MM:SS.ffffff' as with the T separator", () => {
    for (const t of instants) {
      const wall = t.replace("T", " ");
      for (const assume of ["Z", null, "+02:00"])
        assert.equal(isoTimestamp(wall, assume), isoTimestamp(t, assume), `${wall} ${assume}`);
    }
  });
  it("utcWallClock: '...Z' as with '+00:00'", () => {
    for (const t of instants) assert.equal(utcWallClock(`${t}Z`), utcWallClock(`${t}+00:00`), t);
  });
  it("trailing fraction zeros are dropped on the fast path too", () => {
    assert.equal(isoTimestamp("2026-01-01 00:25:00.000500+00"), "2026-01-01T00:25:00.0005Z");
    assert.equal(isoTimestamp("2026-01-01 00:25:00.000000+00"), "2026-01-01T00:25:00Z");
    assert.equal(utcWallClock("2026-01-01T00:25:00.05Z"), "2026-01-01 00:25:00.050000");
  });
});
