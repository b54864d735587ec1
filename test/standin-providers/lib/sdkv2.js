// @ts-check
/**
 * Helpers for schemas of providers written with terraform-plugin-sdk v2, shown in the protocol form
 * the SDK gives them (helper/schema/core_schema.go): every resource has an optional, computed `id`,
 * and a resource with Timeouts gets a single `timeouts` block holding one optional string per
 * declared timeout.
 */

/** @param {string} name @param {any} type @param {any} [flags] */
const attr = (name, type, flags = { optional: true }) => ({ name, type, ...flags });

/** The SDK's id attribute. */
const id = () => attr("id", "string", { optional: true, computed: true });

/** @param {string[]} names e.g. ["create", "update", "delete"] */
const timeouts = (names) => ({
  typeName: "timeouts", nesting: /** @type {const} */ ("SINGLE"),
  block: { attributes: names.map((n) => attr(n, "string")) },
});

module.exports = { attr, id, timeouts };
