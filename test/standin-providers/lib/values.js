// @ts-check
/**
 * Values on the wire: Terraform's DynamicValue is msgpack, encoded against the schema
 * (hashicorp/terraform docs/plugin-protocol/object-wire-format.md): an object carries every
 * attribute of its schema (nil for null), list/set blocks are arrays (empty when absent), an unknown
 * value is msgpack extension type 0, and a value of the dynamic pseudo-type is the pair
 * [JSON type, value]. cty may send refined unknowns as extension type 12; both decode to UNKNOWN.
 *
 * In JavaScript: null, UNKNOWN, string, number, boolean, arrays (list, set), plain objects (map,
 * object), and Dyn for a dynamically typed value (kept opaque).
 */
const { decode, encode, ExtensionCodec, ExtData } = require("@msgpack/msgpack");

/** The unknown value ("known after apply"). */
const UNKNOWN = Object.freeze({ unknown: true });

/** A value of the dynamic pseudo-type, as received: its type (JSON text) and its raw value. */
class Dyn {
  /** @param {string} typeJson @param {any} value */
  constructor(typeJson, value) { this.typeJson = typeJson; this.value = value; }
}

const codec = new ExtensionCodec();
codec.register({
  type: 0,
  encode: (v) => (v === UNKNOWN ? new Uint8Array([0]) : null),
  decode: () => UNKNOWN,
});
codec.register({ type: 12, encode: () => null, decode: () => UNKNOWN });

/**
 * @typedef {{ name: string, type: any, required?: boolean, optional?: boolean, computed?: boolean,
 *   sensitive?: boolean, deprecated?: boolean, description?: string }} Attribute
 * @typedef {{ typeName: string, nesting: "SINGLE"|"LIST"|"SET"|"MAP"|"GROUP", block: Block,
 *   minItems?: number, maxItems?: number }} NestedBlock
 * @typedef {{ attributes: Attribute[], blocks?: NestedBlock[], description?: string }} Block
 */

/** Decode a DynamicValue's msgpack against a block schema. @param {Buffer|Uint8Array} buf @param {Block} block */
function decodeBlockValue(buf, block) {
  if (!buf || buf.length === 0) return null;
  return fromWireBlock(block, decode(buf, { extensionCodec: codec }));
}

/** @param {any} v */
function isUnknownRaw(v) { return v === UNKNOWN || v instanceof ExtData; }

/** @param {Block} block @param {any} raw */
function fromWireBlock(block, raw) {
  if (raw === null || raw === undefined) return null;
  if (isUnknownRaw(raw)) return UNKNOWN;
  /** @type {Record<string, any>} */
  const out = {};
  for (const a of block.attributes) out[a.name] = fromWire(a.type, raw[a.name]);
  for (const b of block.blocks ?? []) out[b.typeName] = fromWireNested(b, raw[b.typeName]);
  return out;
}

/** @param {NestedBlock} b @param {any} raw */
function fromWireNested(b, raw) {
  if (raw === null || raw === undefined) return b.nesting === "SINGLE" || b.nesting === "GROUP" ? null : b.nesting === "MAP" ? {} : [];
  if (isUnknownRaw(raw)) return UNKNOWN;
  if (b.nesting === "LIST" || b.nesting === "SET") return raw.map((/** @type {any} */ x) => fromWireBlock(b.block, x));
  if (b.nesting === "MAP") return Object.fromEntries(Object.entries(raw).map(([k, x]) => [k, fromWireBlock(b.block, x)]));
  return fromWireBlock(b.block, raw);
}

/** @param {any} type cty type in its JSON form @param {any} raw */
function fromWire(type, raw) {
  if (raw === null || raw === undefined) return null;
  if (isUnknownRaw(raw)) return UNKNOWN;
  if (type === "dynamic") return new Dyn(Buffer.from(raw[0]).toString("utf8"), raw[1]);
  if (Array.isArray(type)) {
    const [kind, elem] = type;
    if (kind === "list" || kind === "set") return raw.map((/** @type {any} */ x) => fromWire(elem, x));
    if (kind === "map") return Object.fromEntries(Object.entries(raw).map(([k, x]) => [k, fromWire(elem, x)]));
    if (kind === "object") return Object.fromEntries(Object.entries(elem).map(([k, t]) => [k, fromWire(t, raw[k])]));
    if (kind === "tuple") return elem.map((/** @type {any} */ t, /** @type {number} */ i) => fromWire(t, raw[i]));
  }
  return raw;
}

/** Encode a block value for the wire. @param {Block} block @param {any} value */
function encodeBlockValue(block, value) {
  return encode(toWireBlock(block, value), { extensionCodec: codec });
}

/** @param {Block} block @param {any} v */
function toWireBlock(block, v) {
  if (v === null || v === undefined) return null;
  if (v === UNKNOWN) return UNKNOWN;
  /** @type {Record<string, any>} */
  const out = {};
  for (const a of block.attributes) out[a.name] = toWire(a.type, v[a.name]);
  for (const b of block.blocks ?? []) out[b.typeName] = toWireNested(b, v[b.typeName]);
  return out;
}

/** @param {NestedBlock} b @param {any} v */
function toWireNested(b, v) {
  if (v === UNKNOWN) return UNKNOWN;
  if (b.nesting === "LIST" || b.nesting === "SET") return (v ?? []).map((/** @type {any} */ x) => toWireBlock(b.block, x));
  if (b.nesting === "MAP") return Object.fromEntries(Object.entries(v ?? {}).map(([k, x]) => [k, toWireBlock(b.block, x)]));
  return toWireBlock(b.block, v);
}

/** @param {any} type @param {any} v */
function toWire(type, v) {
  if (v === null || v === undefined) return null;
  if (v === UNKNOWN) return UNKNOWN;
  if (type === "dynamic") {
    if (!(v instanceof Dyn)) throw new Error("stand-in: a dynamic value must be passed through as received");
    return [Buffer.from(v.typeJson, "utf8"), v.value];
  }
  if (Array.isArray(type)) {
    const [kind, elem] = type;
    if (kind === "list" || kind === "set") return v.map((/** @type {any} */ x) => toWire(elem, x));
    if (kind === "map") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toWire(elem, x)]));
    if (kind === "object") return Object.fromEntries(Object.entries(elem).map(([k, t]) => [k, toWire(t, v[k])]));
    if (kind === "tuple") return elem.map((/** @type {any} */ t, /** @type {number} */ i) => toWire(t, v[i]));
  }
  return v;
}

/**
 * A value from Terraform's JSON state (UpgradeResourceState's raw_state) in the shape of the block:
 * attributes missing from the JSON are null, absent list/set blocks empty.
 * @param {Block} block @param {any} json
 */
function fromStateJson(block, json) {
  if (json === null || json === undefined) return null;
  /** @type {Record<string, any>} */
  const out = {};
  for (const a of block.attributes) out[a.name] = json[a.name] ?? null;
  for (const b of block.blocks ?? []) {
    const raw = json[b.typeName];
    if (b.nesting === "LIST" || b.nesting === "SET") out[b.typeName] = (raw ?? []).map((/** @type {any} */ x) => fromStateJson(b.block, x));
    else if (b.nesting === "MAP") out[b.typeName] = Object.fromEntries(Object.entries(raw ?? {}).map(([k, x]) => [k, fromStateJson(b.block, x)]));
    else out[b.typeName] = fromStateJson(b.block, raw);
  }
  return out;
}

/** True when v (deeply) contains an unknown value. @param {any} v @returns {boolean} */
function containsUnknown(v) {
  if (v === UNKNOWN) return true;
  if (v instanceof Dyn) return containsUnknownRaw(v.value);
  if (Array.isArray(v)) return v.some(containsUnknown);
  if (v && typeof v === "object") return Object.values(v).some(containsUnknown);
  return false;
}
/** @param {any} v @returns {boolean} */
function containsUnknownRaw(v) {
  if (isUnknownRaw(v)) return true;
  if (Array.isArray(v)) return v.some(containsUnknownRaw);
  if (v && typeof v === "object" && !(v instanceof Uint8Array)) return Object.values(v).some(containsUnknownRaw);
  return false;
}

/** Deep equality of two values (unknown equals nothing, not even unknown). @param {any} a @param {any} b @returns {boolean} */
function equal(a, b) {
  if (a === UNKNOWN || b === UNKNOWN) return false;
  if (a === b) return true;
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return false;
  if (a instanceof Dyn || b instanceof Dyn) return a instanceof Dyn && b instanceof Dyn && a.typeJson === b.typeJson && JSON.stringify(a.value) === JSON.stringify(b.value);
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && equal(a[k], b[k]));
}

module.exports = { UNKNOWN, Dyn, decodeBlockValue, encodeBlockValue, fromStateJson, containsUnknown, equal };
