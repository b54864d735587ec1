// @ts-check
/** Plan rules shared by several stand-ins, as the real providers implement them. */
const { equal, UNKNOWN } = require("./values");

/**
 * RequiresReplaceIfValuesNotNull, the map plan modifier of hashicorp/terraform-provider-null
 * (internal/planmodifiers/attribute.go, v3.2.4) and of terraform-provider-random
 * (internal/planmodifiers/map/mapplanmodifiers.go, v3.7.2): a changed map replaces the resource,
 * except that keys whose new value is null do not count (the old SDK dropped them from state).
 * @param {Record<string, any> | null} state @param {Record<string, any> | null | object} config
 */
function mapRequiresReplaceIfValuesNotNull(state, config) {
  if (equal(config, state)) return false;
  // A null or unknown map has no elements there, as in the Go code.
  const cfg = /** @type {Record<string, any>} */ (config !== null && config !== UNKNOWN ? config : {});
  if (state === null) return Object.values(cfg).some((v) => v !== null);
  for (const [k, v] of Object.entries(cfg)) {
    if (!(k in state) && v === null) continue;
    if (equal(v, state[k])) continue;
    return true;
  }
  return Object.keys(state).some((k) => !(k in cfg));
}

module.exports = { mapRequiresReplaceIfValuesNotNull };
