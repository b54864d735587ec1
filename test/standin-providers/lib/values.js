// @ts-check
/**
 * Values on the wire, decoded for the stand-ins' validators: Terraform's DynamicValue is msgpack,
 * encoded against the schema
 * (hashicorp/terraform docs/plugin-protocol/object-wire-format.md): an object carries every
 * attribute of its schema (nil for null), list/set blocks are arrays (empty when absent), an unknown
 * value is msgpack extension type 0, and a value of the dynamic pseudo-type is the pair
 * [JSON type, value]. cty may send refined unknowns as extension type 12; both decode to UNKNOWN.
 *
 * In JavaScript: null, UNKNOWN, string, number, boolean, arrays (list, set), plain objects (map,
 * object), and Dyn for a dynamically typed value (kept opaque).
 */
const { decode, ExtensionCodec, ExtData } = require("@msgpack/msgpack");

/** The unknown value ("known after apply"). */
const UNKNOWN = Object.freeze({ unknown: true });

/** A value of the dynamic pseudo-type, as received: its type (JSON text) and its raw value. */
class Dyn {
  /** @param {string} typeJson @param {any} value */
  constructor(typeJson, value) { this.typeJson = typeJson; this.value = value; }
}

const codec = new ExtensionCodec();
codec.register({ type: 0, encode: () => null, decode: () => UNKNOWN });
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

module.exports = { UNKNOWN, Dyn, decodeBlockValue };
