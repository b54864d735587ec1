// @ts-check
/**
 * Stand-in for registry.terraform.io/hashicorp/google 6.50.0 (examples/multi-provider): SCHEMA
 * ONLY, for `terraform init` and `terraform validate`. Planning answers with an error: the real
 * provider needs Google Cloud's API and credentials.
 *
 * A SUBSET of the real schemas (the real google_compute_instance alone has ~50 arguments and 30
 * nested blocks): every required argument and block of the types served, and every argument, block
 * and attribute examples/multi-provider sets or references, with the real names, types and
 * optional/required/computed/sensitive flags. So validate catches a misspelt or mistyped argument
 * among those and a missing required one; it would also reject a real argument left out here.
 * From hashicorp/terraform-provider-google at v6.50.0 (SDKv2):
 *   google/provider/provider.go                          provider: project, region, zone, credentials
 *   google/services/compute/resource_compute_instance.go google_compute_instance (schema version 6)
 *   google/services/compute/resource_compute_firewall.go google_compute_firewall (schema version 1)
 */
const { serve } = require("./lib/server");
const { attr, id, timeouts } = require("./lib/sdkv2");

const optComputed = { optional: true, computed: true };

serve({
  name: "google",
  schemaOnly: "The stand-in google provider serves schemas only (for terraform validate): planning needs Google Cloud's API and credentials.",
  providerSchema: {
    attributes: [attr("credentials", "string"), attr("project", "string"), attr("region", "string"), attr("zone", "string")],
  },
  dataSources: {},
  resources: {
    google_compute_instance: {
      version: 6,
      schema: {
        attributes: [
          attr("machine_type", "string", { required: true }),
          attr("name", "string", { required: true }),
          attr("metadata", ["map", "string"]),
          attr("tags", ["set", "string"]),
          attr("zone", "string", optComputed),
          attr("project", "string", optComputed),
          attr("instance_id", "string", { computed: true }),
          attr("self_link", "string", { computed: true }),
          id(),
        ],
        blocks: [
          {
            typeName: "boot_disk", nesting: "LIST", minItems: 1, maxItems: 1,
            block: {
              attributes: [
                attr("auto_delete", "bool"),
                attr("device_name", "string", optComputed),
                attr("disk_encryption_key_raw", "string", { optional: true, sensitive: true }),
                attr("disk_encryption_key_rsa", "string", { optional: true, sensitive: true }),
                attr("source", "string", optComputed),
                attr("mode", "string"),
              ],
              blocks: [
                {
                  typeName: "initialize_params", nesting: "LIST", maxItems: 1,
                  block: {
                    attributes: [
                      attr("size", "number", optComputed),
                      attr("type", "string", optComputed),
                      attr("image", "string", optComputed),
                      attr("labels", ["map", "string"], optComputed),
                    ],
                  },
                },
              ],
            },
          },
          {
            typeName: "network_interface", nesting: "LIST", minItems: 1,
            block: {
              attributes: [
                attr("network", "string", optComputed),
                attr("subnetwork", "string", optComputed),
                attr("network_ip", "string", optComputed),
                attr("name", "string", { computed: true }),
              ],
              blocks: [
                {
                  typeName: "access_config", nesting: "LIST",
                  block: {
                    attributes: [
                      attr("nat_ip", "string", optComputed),
                      attr("network_tier", "string", optComputed),
                      attr("public_ptr_domain_name", "string"),
                    ],
                  },
                },
              ],
            },
          },
          timeouts(["create", "update", "delete"]),
        ],
      },
    },
    google_compute_firewall: {
      version: 1,
      schema: {
        attributes: [
          attr("name", "string", { required: true }),
          attr("network", "string", { required: true }),
          attr("source_ranges", ["set", "string"]),
          attr("target_tags", ["set", "string"]),
          attr("description", "string"),
          attr("direction", "string", optComputed),
          attr("priority", "number"),
          attr("project", "string", optComputed),
          attr("self_link", "string", { computed: true }),
          id(),
        ],
        blocks: [
          {
            typeName: "allow", nesting: "SET",
            block: { attributes: [attr("protocol", "string", { required: true }), attr("ports", ["list", "string"])] },
          },
          {
            typeName: "deny", nesting: "SET",
            block: { attributes: [attr("protocol", "string", { required: true }), attr("ports", ["list", "string"])] },
          },
          timeouts(["create", "update", "delete"]),
        ],
      },
    },
  },
});
