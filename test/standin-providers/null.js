// @ts-check
/**
 * Stand-in for registry.terraform.io/hashicorp/null 3.2.4: `null_resource` only (what cdktf-k3s-kilo
 * uses; the deprecated `null_data_source` is not served). Schema and behaviour from
 * hashicorp/terraform-provider-null at v3.2.4: internal/provider/resource.go (schema, Create sets a
 * random id), internal/planmodifiers/attribute.go (triggers: RequiresReplaceIfValuesNotNull),
 * internal/provider/provider.go (empty provider schema).
 */
const { randomInt } = require("crypto");
const { serve } = require("./lib/server");
const { mapRequiresReplaceIfValuesNotNull } = require("./lib/modifiers");

serve({
  name: "null",
  providerSchema: { attributes: [] },
  dataSources: {},
  resources: {
    null_resource: {
      version: 0,
      schema: {
        attributes: [
          { name: "triggers", type: ["map", "string"], optional: true },
          { name: "id", type: "string", computed: true },
        ],
      },
      useStateForUnknown: ["id"],
      requiresReplace: (prior, _planned, config) => (mapRequiresReplaceIfValuesNotNull(prior.triggers, config.triggers) ? ["triggers"] : []),
      // Upstream: fmt.Sprintf("%d", rand.Int()), a non-negative 63-bit integer.
      create: (planned) => ({ ...planned, id: (BigInt(randomInt(2 ** 47)) * 65536n + BigInt(randomInt(65536))).toString() }),
    },
  },
});
