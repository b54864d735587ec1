// @ts-check
/**
 * Stand-in for registry.terraform.io/hashicorp/random 3.7.2: `random_password` only (the one type
 * cdktf-k3s-kilo uses). Schema and behaviour from hashicorp/terraform-provider-random at v3.7.2:
 * internal/provider/resource_password.go (passwordSchemaV3, Create), internal/random/string.go
 * (CreateString), internal/planmodifiers/bool/boolplanmodifiers.go (number/numeric),
 * internal/provider/provider.go (empty provider schema).
 *
 * The result is generated once, at create, from Node's CSPRNG, and kept in state: plans and applies
 * after that carry it unchanged (Read does nothing, as upstream). Every argument replaces the
 * resource when changed (`keepers` by RequiresReplaceIfValuesNotNull).
 */
const { randomInt } = require("crypto");
const { serve, error, UNKNOWN } = require("./lib/server");
const { mapRequiresReplaceIfValuesNotNull } = require("./lib/modifiers");
const { equal } = require("./lib/values");

/** @type {import("./lib/values").Block} */
const passwordSchema = {
  description: "Identical to random_string with the exception that the result is treated as sensitive.",
  attributes: [
    { name: "keepers", type: ["map", "string"], optional: true },
    { name: "length", type: "number", required: true },
    { name: "special", type: "bool", optional: true, computed: true },
    { name: "upper", type: "bool", optional: true, computed: true },
    { name: "lower", type: "bool", optional: true, computed: true },
    { name: "number", type: "bool", optional: true, computed: true, deprecated: true },
    { name: "numeric", type: "bool", optional: true, computed: true },
    { name: "min_numeric", type: "number", optional: true, computed: true },
    { name: "min_upper", type: "number", optional: true, computed: true },
    { name: "min_lower", type: "number", optional: true, computed: true },
    { name: "min_special", type: "number", optional: true, computed: true },
    { name: "override_special", type: "string", optional: true },
    { name: "result", type: "string", computed: true, sensitive: true },
    { name: "bcrypt_hash", type: "string", computed: true, sensitive: true },
    { name: "id", type: "string", computed: true },
  ],
};

// RequiresReplace on every argument but keepers and override_special (own rules below).
const REPLACE = ["length", "special", "upper", "lower", "number", "numeric", "min_numeric", "min_upper", "min_lower", "min_special"];

/** internal/random/string.go CreateString, with crypto.randomInt for crypto/rand. @param {any} p */
function createString(p) {
  const num = "0123456789";
  const lower = "abcdefghijklmnopqrstuvwxyz";
  const upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  const special = p.override_special ? p.override_special : "!@#$%&*()-_=+[]{}<>:?";
  const chars = (p.upper ? upper : "") + (p.lower ? lower : "") + (p.numeric ? num : "") + (p.special ? special : "");
  if (chars === "") throw new Error("the character set specified is empty");
  /** @param {string} set @param {number} n */
  const pick = (set, n) => Array.from({ length: Math.max(0, n) }, () => set[randomInt(set.length)]);
  const out = [
    ...pick(num, p.min_numeric), ...pick(lower, p.min_lower), ...pick(upper, p.min_upper), ...pick(special, p.min_special),
  ];
  out.push(...pick(chars, p.length - out.length));
  // Shuffle (Fisher–Yates with the CSPRNG; upstream sorts by random keys).
  for (let i = out.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out.join("");
}

serve({
  name: "random",
  providerSchema: { attributes: [] },
  dataSources: {},
  resources: {
    random_password: {
      version: 3,
      schema: passwordSchema,
      defaults: { special: true, upper: true, lower: true, min_numeric: 0, min_upper: 0, min_lower: 0, min_special: 0 },
      useStateForUnknown: ["result", "bcrypt_hash", "id"],
      validate(c) {
        const d = [];
        const known = (/** @type {any} */ v) => v !== null && v !== UNKNOWN;
        if (known(c.length)) {
          if (c.length < 1) d.push(error("Invalid Attribute Value", `Attribute length value must be at least 1, got: ${c.length}`, "length"));
          const mins = ["min_upper", "min_lower", "min_numeric", "min_special"].map((k) => (known(c[k]) ? c[k] : 0)).reduce((a, b) => a + b, 0);
          if (c.length < mins) d.push(error("Invalid Attribute Value", `Attribute length value must be at least sum of min_upper, min_lower, min_numeric, min_special (${mins}), got: ${c.length}`, "length"));
        }
        if (known(c.number) && known(c.numeric) && c.number !== c.numeric) {
          d.push(error("Number and numeric are both configured with different values", "Number is deprecated, use numeric instead"));
        }
        const flags = ["special", "upper", "lower", "numeric"].map((k) => c[k === "numeric" && c.numeric === null ? "number" : k]);
        if (flags.every((v) => v === false)) d.push(error("Invalid Attribute Combination", "At least one attribute out of [special, upper, lower, numeric] must be specified as true"));
        return d;
      },
      modifyPlan(planned, _prior, config) {
        // NumberNumericAttributePlanModifier: number and numeric mirror each other, both true by default.
        const v = config.numeric !== null ? config.numeric : config.number !== null ? config.number : true;
        return { ...planned, number: v, numeric: v };
      },
      requiresReplace(prior, planned, config) {
        const paths = REPLACE.filter((n) => !equal(prior[n], planned[n]));
        if (mapRequiresReplaceIfValuesNotNull(prior.keepers, config.keepers)) paths.push("keepers");
        // RequiresReplaceUnlessEmptyStringToNull: "" -> null is no change.
        if (!equal(prior.override_special, planned.override_special) && !(prior.override_special === "" && planned.override_special === null)) {
          paths.push("override_special");
        }
        return paths;
      },
      create(planned) {
        const result = createString(planned);
        // bcrypt hashes at most 72 bytes (upstream generateHash); DefaultCost is 10. Loaded only here.
        const hash = require("bcryptjs").hashSync(Buffer.from(result).subarray(0, 72).toString(), 10);
        return { ...planned, result, bcrypt_hash: hash, id: "none" };
      },
    },
  },
});
