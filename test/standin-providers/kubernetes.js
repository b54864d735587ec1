// @ts-check
/**
 * Stand-in for registry.terraform.io/hashicorp/kubernetes 2.38.0: SCHEMA ONLY, enough for
 * `terraform init` and `terraform validate` of the stacks that use it (KiloMesh's mesh stack).
 *
 * Planning, applying or reading anything answers with an error: the real provider needs a live
 * Kubernetes API server for every plan (kubernetes_manifest asks the server for the resource's
 * OpenAPI type), and this test machine has none (the K3s installer is a stand-in too).
 *
 * Schemas from hashicorp/terraform-provider-kubernetes at v2.38.0:
 *   kubernetes/provider.go                           provider configuration (SDKv2 schema)
 *   kubernetes/resource_kubernetes_annotations.go    kubernetes_annotations (SDKv2 schema)
 *   manifest/provider/provider.go                    kubernetes_manifest (GetProviderResourceSchema)
 * SDKv2 schemas are shown to Terraform in their protocol form (as terraform-plugin-sdk converts them):
 * a TypeList of a schema.Resource with MaxItems 1 is a LIST nested block, `Required` on it gives
 * min_items 1, a TypeMap without Elem is a map of strings, and every resource gets an optional,
 * computed `id`. Only the types our stacks use are served.
 */
const { serve, error } = require("./lib/server");

/** @param {string} name @param {any} type @param {any} [extra] */
const a = (name, type, extra = { optional: true }) => ({ name, type, ...extra });

/** @type {import("./lib/values").Block} */
const providerSchema = {
  attributes: [
    a("host", "string"),
    a("username", "string"),
    a("password", "string"),
    a("insecure", "bool"),
    a("tls_server_name", "string"),
    a("client_certificate", "string"),
    a("client_key", "string"),
    a("cluster_ca_certificate", "string"),
    a("config_paths", ["list", "string"]),
    a("config_path", "string"),
    a("config_context", "string"),
    a("config_context_auth_info", "string"),
    a("config_context_cluster", "string"),
    a("token", "string"),
    a("proxy_url", "string"),
    a("ignore_annotations", ["list", "string"]),
    a("ignore_labels", ["list", "string"]),
  ],
  blocks: [
    {
      typeName: "exec", nesting: "LIST", maxItems: 1,
      block: {
        attributes: [
          a("api_version", "string", { required: true }),
          a("command", "string", { required: true }),
          a("env", ["map", "string"]),
          a("args", ["list", "string"]),
        ],
      },
    },
    {
      typeName: "experiments", nesting: "LIST", maxItems: 1,
      block: { attributes: [a("manifest_resource", "bool", { optional: true, deprecated: true })] },
    },
  ],
};

const SCHEMA_ONLY = "The stand-in kubernetes provider serves schemas only (for terraform validate): planning needs a live " +
  "Kubernetes API server, which the test machine does not have.";

serve({
  name: "kubernetes",
  providerSchema,
  schemaOnly: SCHEMA_ONLY,
  // ConflictsWith on config_path (kubernetes/provider.go).
  validateConfig: (c) => (c && c.config_path !== null && c.config_paths !== null
    ? [error("Invalid combination of arguments", "\"config_path\": conflicts with config_paths", "config_path")] : []),
  dataSources: {},
  resources: {
    kubernetes_annotations: {
      version: 0,
      schema: {
        attributes: [
          a("api_version", "string", { required: true }),
          a("kind", "string", { required: true }),
          a("annotations", ["map", "string"]),
          a("template_annotations", ["map", "string"]),
          a("force", "bool"),
          a("field_manager", "string"),
          a("id", "string", { optional: true, computed: true }),
        ],
        blocks: [
          {
            typeName: "metadata", nesting: "LIST", minItems: 1, maxItems: 1,
            block: { attributes: [a("name", "string", { required: true }), a("namespace", "string")] },
          },
        ],
      },
      // AtLeastOneOf: template_annotations, annotations.
      validate: (c) => (c.annotations === null && c.template_annotations === null
        ? [error("Missing required argument", "\"annotations\": one of `annotations,template_annotations` must be specified")] : []),
    },
    kubernetes_manifest: {
      version: 1,
      schema: {
        attributes: [
          a("manifest", "dynamic", { required: true }),
          a("object", "dynamic", { optional: true, computed: true }),
          a("wait_for", ["object", { fields: ["map", "string"] }], { optional: true, deprecated: true }),
          a("computed_fields", ["list", "string"]),
        ],
        blocks: [
          {
            typeName: "timeouts", nesting: "LIST", maxItems: 1,
            block: { attributes: [a("create", "string"), a("update", "string"), a("delete", "string")] },
          },
          {
            typeName: "field_manager", nesting: "LIST", maxItems: 1,
            block: { attributes: [a("name", "string"), a("force_conflicts", "bool")] },
          },
          {
            typeName: "wait", nesting: "LIST", maxItems: 1,
            block: {
              attributes: [a("rollout", "bool"), a("fields", ["map", "string"])],
              blocks: [{ typeName: "condition", nesting: "LIST", block: { attributes: [a("status", "string"), a("type", "string")] } }],
            },
          },
        ],
      },
    },
  },
});
