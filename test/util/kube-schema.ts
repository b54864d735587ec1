/**
 * Validate Kubernetes objects against the Kubernetes API schema with kubernetes-models.
 *
 * kubernetes-models is published as ES modules only, which jest's CommonJS runtime cannot load;
 * so the objects are validated by a short ES-module program run with node itself.
 */
import { spawnSync } from "child_process";

/** kind → [module, class] in kubernetes-models. */
const MODELS: Record<string, [string, string]> = {
  "apiextensions.k8s.io/v1/CustomResourceDefinition": ["kubernetes-models/apiextensions.k8s.io/v1", "CustomResourceDefinition"],
  "v1/ConfigMap": ["kubernetes-models/v1", "ConfigMap"],
  "v1/ServiceAccount": ["kubernetes-models/v1", "ServiceAccount"],
  "v1/Node": ["kubernetes-models/v1", "Node"],
  "rbac.authorization.k8s.io/v1/ClusterRole": ["kubernetes-models/rbac.authorization.k8s.io/v1", "ClusterRole"],
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": ["kubernetes-models/rbac.authorization.k8s.io/v1", "ClusterRoleBinding"],
  "apps/v1/DaemonSet": ["kubernetes-models/apps/v1", "DaemonSet"],
};

const PROGRAM = `
const MODELS = ${JSON.stringify(MODELS)};
let input = "";
for await (const chunk of process.stdin) input += chunk;
const results = [];
for (const obj of JSON.parse(input)) {
  const key = obj.apiVersion + "/" + obj.kind;
  const model = MODELS[key];
  if (!model) { results.push("no kubernetes-models class for " + key); continue; }
  const mod = await import(model[0]);
  try { new mod[model[1]](obj).validate(); results.push(null); }
  catch (e) { results.push(key + " " + (obj.metadata && obj.metadata.name) + ": " + e.message); }
}
process.stdout.write(JSON.stringify(results));
`;

/** One entry per object: null when valid, else the validation message. */
export function kubernetesSchemaErrors(objects: any[]): Array<string | null> {
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", PROGRAM], {
    input: JSON.stringify(objects),
    encoding: "utf8",
    cwd: __dirname,
    timeout: 60000,
  });
  if (r.status !== 0) throw new Error(`kubernetes-models validation did not run: ${r.stderr}`);
  return JSON.parse(r.stdout);
}
