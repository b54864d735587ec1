// @ts-check
/**
 * Stand-in for registry.terraform.io/digitalocean/digitalocean 2.71.0 (examples/multi-provider):
 * SCHEMA ONLY, for `terraform init` and `terraform validate`. Planning answers with an error: the
 * real provider needs DigitalOcean's API and an account token.
 *
 * Schemas from digitalocean/terraform-provider-digitalocean at v2.71.0 (SDKv2), complete for the
 * types served: digitalocean/provider.go (provider; api_endpoint is Required with a DefaultFunc,
 * which the SDK shows as optional), digitalocean/droplet/resource_droplet.go, digitalocean/tag/tags.go
 * (tags), digitalocean/sshkey/resource_ssh_key.go. Only the types the example uses are served.
 */
const { serve } = require("./lib/server");
const { attr, id, timeouts } = require("./lib/sdkv2");

const computed = { computed: true };

serve({
  name: "digitalocean",
  schemaOnly: "The stand-in digitalocean provider serves schemas only (for terraform validate): planning needs DigitalOcean's API and a token.",
  providerSchema: {
    attributes: [
      attr("token", "string"),
      attr("api_endpoint", "string"),
      attr("spaces_endpoint", "string"),
      attr("spaces_access_id", "string"),
      attr("spaces_secret_key", "string"),
      attr("requests_per_second", "number"),
      attr("http_retry_max", "number"),
      attr("http_retry_wait_min", "number"),
      attr("http_retry_wait_max", "number"),
    ],
  },
  dataSources: {},
  resources: {
    digitalocean_droplet: {
      version: 1,
      schema: {
        attributes: [
          attr("image", "string", { required: true }),
          attr("name", "string", { required: true }),
          attr("region", "string", { optional: true, computed: true }),
          attr("size", "string", { required: true }),
          attr("graceful_shutdown", "bool"),
          attr("created_at", "string", computed),
          attr("urn", "string", computed),
          attr("disk", "number", computed),
          attr("vcpus", "number", computed),
          attr("memory", "number", computed),
          attr("price_hourly", "number", computed),
          attr("price_monthly", "number", computed),
          attr("resize_disk", "bool"),
          attr("status", "string", computed),
          attr("locked", "bool", computed),
          attr("backups", "bool"),
          attr("ipv6", "bool"),
          attr("ipv6_address", "string", { optional: true, computed: true }),
          attr("private_networking", "bool", { optional: true, computed: true, deprecated: true }),
          attr("ipv4_address", "string", computed),
          attr("ipv4_address_private", "string", computed),
          attr("ssh_keys", ["set", "string"]),
          attr("user_data", "string"),
          attr("volume_ids", ["set", "string"], { optional: true, computed: true }),
          attr("monitoring", "bool"),
          attr("droplet_agent", "bool"),
          attr("tags", ["set", "string"]),
          attr("vpc_uuid", "string", { optional: true, computed: true }),
          id(),
        ],
        blocks: [
          {
            typeName: "backup_policy", nesting: "LIST", maxItems: 1,
            block: { attributes: [attr("plan", "string"), attr("weekday", "string"), attr("hour", "number")] },
          },
          timeouts(["create", "update", "delete"]),
        ],
      },
    },
    digitalocean_ssh_key: {
      version: 0,
      schema: {
        attributes: [
          attr("name", "string", { required: true }),
          attr("public_key", "string", { required: true }),
          attr("fingerprint", "string", computed),
          id(),
        ],
        blocks: [timeouts(["create"])],
      },
    },
  },
});
