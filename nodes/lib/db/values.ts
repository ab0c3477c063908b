/**
 * Lossless value forms (DESIGN.md §3). Timestamps travel as ISO 8601 text with an
 * offset and every fractional digit the database keeps; trailing zeros of the
 * fraction are dropped so that PostgreSQL ("...05.12") and MySQL DATETIME(6)
 * ("...05.120000") give the same string. A JavaScript Date is never involved in
 * the fractional part, because it keeps only milliseconds.
 */

const SQL_TIMESTAMP =
  /^(\d{4,}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d+))?(?:\s*(Z|[+-]\d{2}(?::?\d{2})?))?$/;

// What PostgreSQL sends for timestamptz in a UTC session, and what isoTimestamp makes of
// UTC values: by far the most common texts, converted by slicing (no captures, no
// allocation of match arrays) because every row of a sync passes through here.
const PG_UTC_TEXT = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{1,6})?\+00$/;
const ISO_UTC_TEXT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z$/;
// What MySQL sends for DATETIME (and PostgreSQL for timestamp): a wall clock, no offset.
const WALL_CLOCK_TEXT = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{1,6})?$/;

/** `text` up to `end`, without trailing fraction zeros (and the dot, if nothing is left). */
function trimmedTo(text: string, end: number): string {
  if (end <= 19) return text.slice(11, end);
  while (text.charCodeAt(end - 1) === 48 /* 0 */) end -= 1;
  if (text.charCodeAt(end - 1) === 46 /* . */) end -= 1;
  return text.slice(11, end);
}

function trimFraction(fraction: string | undefined): string {
  const trimmed = (fraction ?? "").replace(/0+$/, "");
  return trimmed ? `.${trimmed}` : "";
}

function normaliseOffset(offset: string): string {
  if (offset === "Z") return "Z";
  const sign = offset[0];
  const digits = offset.slice(1).replace(":", "");
  const hours = digits.slice(0, 2);
  const minutes = digits.slice(2, 4) || "00";
  if (hours === "00" && minutes === "00") return "Z";
  return `${sign}${hours}:${minutes}`;
}

/**
 * A database's timestamp text ("2026-11-01 10:00:00.1234+00") as ISO 8601
 * ("2026-11-01T10:00:00.1234Z"). Without an offset in the text, `assumeOffset`
 * is used (MySQL DATETIME is stored in UTC by convention); `null` keeps it naive.
 * Text it does not recognise (infinity, BC dates) is returned unchanged.
 */
export function isoTimestamp(text: string, assumeOffset: string | null = "Z"): string {
  if (PG_UTC_TEXT.test(text)) return `${text.slice(0, 10)}T${trimmedTo(text, text.length - 3)}Z`;
  if (WALL_CLOCK_TEXT.test(text))
    return `${text.slice(0, 10)}T${trimmedTo(text, text.length)}${assumeOffset ?? ""}`;
  const match = SQL_TIMESTAMP.exec(text);
  if (!match) return text;
  const [, date, time, fraction, offset] = match;
  const zone = offset ? normaliseOffset(offset) : assumeOffset === null ? "" : assumeOffset;
  return `${date}T${time}${trimFraction(fraction)}${zone}`;
}

/**
 * An ISO 8601 timestamp as UTC wall-clock text "YYYY-MM-DD HH:MM:SS.ffffff" for
 * columns without a time zone (MySQL DATETIME/TIMESTAMP, SQL Server datetime2).
 * Returns null when the text is not a timestamp.
 */
export function utcWallClock(text: string): string | null {
  if (ISO_UTC_TEXT.test(text)) {
    const fraction = text.length > 20 ? text.slice(20, text.length - 1) : "";
    return `${text.slice(0, 10)} ${text.slice(11, 19)}.${fraction.padEnd(6, "0")}`;
  }
  const match = SQL_TIMESTAMP.exec(text.trim());
  if (!match) return null;
  const [, date, time, fraction, offset] = match;
  const micro = (fraction ?? "").padEnd(6, "0").slice(0, 6);
  if (fraction && fraction.length > 6 && /[1-9]/.test(fraction.slice(6))) return null;
  if (!offset || normaliseOffset(offset) === "Z") return `${date} ${time}.${micro}`;
  const zone = normaliseOffset(offset);
  const sign = zone[0] === "-" ? -1 : 1;
  const shiftMinutes = sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
  const wall = Date.parse(`${date}T${time}Z`);
  if (Number.isNaN(wall)) return null;
  const utc = new Date(wall - shiftMinutes * 60_000).toISOString(); // whole seconds only
  return `${utc.slice(0, 10)} ${utc.slice(11, 19)}.${micro}`;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === "object" &&
    value !== null &&
    !Buffer.isBuffer(value) &&
    !(value instanceof Date)
  );
}

/**
 * `seconds` earlier than an ISO 8601 timestamp, keeping its fractional digits and
 * offset form exactly (whole seconds are subtracted, so nothing is rounded).
 * Returns null for text that is not a timestamp.
 */
export function isoMinusSeconds(text: string, seconds: number): string | null {
  const match = SQL_TIMESTAMP.exec(text);
  if (!match) return null;
  const [, date, time, fraction, offset] = match;
  const wall = Date.parse(`${date}T${time}Z`);
  if (Number.isNaN(wall)) return null;
  const earlier = new Date(wall - Math.round(seconds) * 1000).toISOString();
  return `${earlier.slice(0, 19)}${fraction ? `.${fraction}` : ""}${offset ? normaliseOffset(offset) : ""}`;
}
