import assert from "node:assert/strict";
import jsonata from "jsonata";
import {
  coerce,
  RecordError,
  RecordMapper,
  type CompileExpression,
} from "../../nodes/lib/transform/mapping";
import { RecordValidator } from "../../nodes/lib/transform/validator";

const compile: CompileExpression = (expression) => {
  const expr = jsonata(expression);
  return async (record) => expr.evaluate(record);
};

describe("transform mappings", () => {
  const record = {
    id: "9007199254740993",
    first: "Ada",
    last: "Lovelace",
    address: { city: "London" },
    balance: "12.50",
    active: "yes",
    joined: "2026-01-02 03:04:05.123456+00",
  };

  it("copies, renames, reads dot paths and evaluates JSONata on the record", async () => {
    const mapper = new RecordMapper(
      [
        { target: "id" },
        { target: "city", source: "address.city" },
        { target: "full_name", expression: "first & ' ' & last" },
        { target: "name_length", expression: "$length(first)", type: "integer" },
      ],
      { dropUnmapped: true },
      compile,
    );
    assert.deepEqual(await mapper.map(record), {
      id: "9007199254740993",
      city: "London",
      full_name: "Ada Lovelace",
      name_length: 3,
    });
  });

  it("maps without a promise when no mapping has an expression, to the same record", async () => {
    const rows = [
      { target: "id", type: "string" as const },
      { target: "city", source: "address.city" },
      { target: "balance", type: "number" as const },
      { target: "tier", default: "basic" },
    ];
    const mapper = new RecordMapper(rows, { dropUnmapped: true }, compile);
    const direct = mapper.mapRecord(record);
    assert.ok(!(direct instanceof Promise));
    assert.deepEqual(direct, await mapper.map(record));
    assert.deepEqual(direct, {
      id: "9007199254740993",
      city: "London",
      balance: 12.5,
      tier: "basic",
    });
    assert.throws(
      () => mapper.mapRecord({ ...record, balance: "twelve" }),
      (err: Error) => err instanceof RecordError && /^balance/.test(err.message),
    );
    const evaluating = new RecordMapper(
      [...rows, { target: "n", expression: "$length(first)" }],
      { dropUnmapped: true },
      compile,
    );
    const later = evaluating.mapRecord(record);
    assert.ok(later instanceof Promise);
    assert.equal((await later).n, 3);
  });

  it("keeps unmapped fields unless asked to drop them, and applies defaults", async () => {
    const mapper = new RecordMapper(
      [
        { target: "country", default: '"UK"' },
        { target: "tier", default: "basic" },
      ],
      { dropUnmapped: false },
      compile,
    );
    const out = await mapper.map(record);
    assert.equal(out.country, "UK");
    assert.equal(out.tier, "basic");
    assert.equal(out.balance, "12.50", "a decimal string stays a string");
  });

  it("coerces types without losing digits", () => {
    assert.equal(coerce("12.50", "number", "f"), 12.5);
    assert.equal(coerce("9007199254740993", "integer", "f"), "9007199254740993");
    assert.equal(coerce("42", "integer", "f"), 42);
    assert.equal(coerce("yes", "boolean", "f"), true);
    assert.equal(coerce(0, "boolean", "f"), false);
    assert.equal(
      coerce("2026-01-02 03:04:05.123456+00", "date", "f"),
      "2026-01-02T03:04:05.123456Z",
    );
    assert.equal(coerce("2026-01-02", "date", "f"), "2026-01-02");
    assert.deepEqual(coerce('{"a":[1,2]}', "json", "f"), { a: [1, 2] });
    assert.equal(coerce(12, "string", "f"), "12");
    assert.throws(
      () => coerce("abc", "number", "price"),
      (err: Error) =>
        err instanceof RecordError && /price: cannot make a number of "abc"/.test(err.message),
    );
    assert.throws(() => coerce("1.5", "integer", "qty"), /qty: cannot make an integer/);
    assert.throws(() => coerce("maybe", "boolean", "ok"), /ok: cannot make a boolean/);
  });

  it("names the mapping row of a bad expression at compile time", () => {
    assert.throws(
      () =>
        new RecordMapper(
          [{ target: "a" }, { target: "b", expression: "first &&& last" }],
          { dropUnmapped: false },
          compile,
        ),
      /mapping 2 \(target b\): the expression does not parse/,
    );
    assert.throws(
      () => new RecordMapper([{ target: "" }], { dropUnmapped: false }, compile),
      /mapping 1: the target field is empty/,
    );
    assert.throws(
      () =>
        new RecordMapper(
          [{ target: "x", type: "money" as never }],
          { dropUnmapped: false },
          compile,
        ),
      /type "money" is not valid/,
    );
  });
});

describe("transform schema validation", () => {
  const schema = JSON.stringify({
    $schema: "https://json-schema.org/draft/2020-12/schema",
    type: "object",
    required: ["id", "email"],
    properties: { id: { type: "integer" }, email: { type: "string", pattern: "@" } },
  });

  it("returns ajv's messages for an invalid record and none for a valid one", () => {
    const validator = new RecordValidator(schema);
    assert.deepEqual(validator.check({ id: 1, email: "a@b" }), []);
    const errors = validator.check({ id: "x", email: "nope" });
    assert.ok(
      errors.some((e) => /\/id must be integer/.test(e)),
      errors.join(),
    );
    assert.ok(
      errors.some((e) => /\/email must match pattern/.test(e)),
      errors.join(),
    );
    assert.ok(
      new RecordValidator(schema)
        .check({ id: 1 })
        .some((e) => /must have required property 'email'/.test(e)),
    );
  });

  it("rejects a schema that is not JSON or not a schema, at deploy", () => {
    assert.throws(() => new RecordValidator("{ nope"), /schema is not JSON/);
    assert.throws(
      () => new RecordValidator(JSON.stringify({ type: "objekt" })),
      /schema is not a valid JSON Schema/,
    );
  });
});
