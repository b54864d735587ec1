/**
 * The mesh and peers stacks (KiloMesh, KiloPeers) planned and applied by the real `terraform` with
 * the real hashicorp/kubernetes provider against a real Kubernetes API (test/harness/control-plane.ts:
 * kube-apiserver, controller manager and scheduler 1.33.4 on kine, Nodes and pods simulated by kwok).
 * The API server checks what no synth test can: RBAC objects, the CRD's schema, every object's
 * OpenAPI validation and server-side apply by the provider.
 *
 * Not K3s: K3s cannot be built here (its module is not served by the Go module proxy), so the mesh
 * stack is given a Kubernetes provider configured with the test API's admin kubeconfig
 * (`kubernetesProvider`, as a user with an existing kubeconfig would) instead of the K3sServer's
 * fetched one; the cluster stack is synthesized, not deployed. Nothing runs in the pods: kwok marks
 * them Running, so kg never starts (see README, Testing).
 */
import { randomBytes } from "crypto";
import { mkdirSync, readFileSync } from "fs";
import { join } from "path";
import { App, TerraformStack } from "cdktf";
import { provider as k8s } from "@cdktf/provider-kubernetes";
import { K3sAgent, K3sServer, KiloMesh, KiloPeers } from "../lib";
import { ControlPlane, startControlPlane } from "./harness/control-plane";
import { synthesizeIn, TerraformCli } from "./harness/terraform-cli";
import { applyJson, JsonRun } from "./harness/terraform-json";

jest.setTimeout(600_000);

const NODES = ["server", "agent-1", "agent-2"];
const PEER_KEY = randomBytes(32).toString("base64");

let cp: ControlPlane;
let work: string;

/** The user's program: a cluster (synthesized only), the mesh on the test API, one peer. */
function synth(mtu?: number): { mesh: string; peers: string; meshJson: any } {
  const out = join(work, "cdktf.out");
  synthesizeIn(work, () => {
    const app = new App({ outdir: out });
    const cluster = new TerraformStack(app, "cluster");
    const ssh = { privateKeyPath: "/nonexistent/id_ed25519" };
    const server = new K3sServer(cluster, "server", { host: { address: "198.51.100.60", location: "a", ssh } });
    new K3sAgent(cluster, "agent-1", { server, host: { address: "198.51.100.61", location: "b", publicAddressOnInterface: false, privateAddress: "10.128.0.2", ssh } });
    new K3sAgent(cluster, "agent-2", { server, host: { address: "198.51.100.62", location: "c", behindNat: true, ssh } });
    const meshStack = new TerraformStack(app, "mesh");
    const kube = (stack: TerraformStack) => new k8s.KubernetesProvider(stack, "kube", { configPath: cp.kubeconfig });
    const mesh = new KiloMesh(meshStack, "kilo", { server, kubernetesProvider: kube(meshStack), mtu });
    const peersStack = new TerraformStack(app, "peers");
    new KiloPeers(peersStack, "peers", {
      mesh, kubernetesProvider: kube(peersStack),
      peers: [{ name: "laptop", publicKey: PEER_KEY, allowedIps: ["10.5.0.1/32"], persistentKeepaliveSeconds: 25 }],
    });
    app.synth();
  });
  const mesh = join(out, "stacks", "mesh");
  return { mesh, peers: join(out, "stacks", "peers"), meshJson: JSON.parse(readFileSync(join(mesh, "cdk.tf.json"), "utf8")) };
}

async function apply(tf: TerraformCli): Promise<JsonRun> {
  const r = await applyJson(tf, { check: false });
  if (!r.ok) throw new Error(`apply failed:\n${r.errors.map((e) => `${e.summary}: ${e.detail}`).join("\n")}\n${r.result.stderr}`);
  return r;
}

const get = async (path: string) => (await cp.api("GET", path)).body;

beforeAll(async () => {
  cp = await startControlPlane();
  await cp.addNodes(NODES);
  work = join(cp.dir, "project");
  mkdirSync(work);
});

afterAll(async () => {
  await cp?.stop();
});

describe("the mesh and peers stacks on a real Kubernetes API with the real kubernetes provider", () => {
  let mesh: TerraformCli;
  let peers: TerraformCli;

  test("the mesh stack needs no state of the cluster stack when given a provider", () => {
    const { meshJson } = synth();
    expect(meshJson.data?.terraform_remote_state).toBeUndefined();
    expect(meshJson.terraform.required_providers.kubernetes.version).toBe(">= 2.38.0, < 4.0.0");
  });

  test("apply: CRD established, RBAC, ConfigMap, annotations on the real Nodes, DaemonSet pods on every node", async () => {
    const { mesh: dir, meshJson } = synth();
    mesh = new TerraformCli(dir);
    await mesh.init();
    const r = await apply(mesh);
    expect(Object.values(r.plan).every((a) => a === "create")).toBe(true);

    const crd = await get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/peers.kilo.squat.ai");
    expect(crd.status.conditions.find((c: any) => c.type === "Established")?.status).toBe("True");
    expect((await get("/api/v1/namespaces/kube-system/serviceaccounts/kilo")).metadata.name).toBe("kilo");
    const role = await get("/apis/rbac.authorization.k8s.io/v1/clusterroles/kilo");
    expect(role.rules.some((x: any) => x.resources.includes("nodes"))).toBe(true);
    expect((await get("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kilo")).subjects[0]).toMatchObject({ kind: "ServiceAccount", name: "kilo", namespace: "kube-system" });
    expect(JSON.parse((await get("/api/v1/namespaces/kube-system/configmaps/kilo")).data["cni-conf.json"]).plugins).toBeDefined();

    // What the Kilo ServiceAccount may do, asked of the API server's own authorizer.
    const can = async (verb: string, resource: string, group = "", name?: string) => (await cp.api("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {
      apiVersion: "authorization.k8s.io/v1", kind: "SubjectAccessReview",
      spec: { user: "system:serviceaccount:kube-system:kilo", groups: ["system:serviceaccounts"], resourceAttributes: { verb, resource, group, name } },
    })).body.status.allowed;
    expect(await can("list", "nodes")).toBe(true);
    expect(await can("patch", "nodes")).toBe(true);
    expect(await can("list", "peers", "kilo.squat.ai")).toBe(true);
    expect(await can("delete", "secrets")).toBe(false);
    // The CRD read is limited to Kilo's own CRD (resourceNames).
    expect(await can("get", "customresourcedefinitions", "apiextensions.k8s.io", "peers.kilo.squat.ai")).toBe(true);
    expect(await can("get", "customresourcedefinitions", "apiextensions.k8s.io", "other.example.com")).toBe(false);

    // Each node's annotations, as the stack declares them, on the Node objects.
    const declared = Object.values<any>(meshJson.resource.kubernetes_annotations);
    expect(declared.map((a) => a.metadata.name).sort()).toEqual([...NODES].sort());
    for (const a of declared) {
      const node = await get(`/api/v1/nodes/${a.metadata.name}`);
      for (const [k, val] of Object.entries(a.annotations)) expect(node.metadata.annotations[k]).toBe(val);
    }
    expect((await get("/api/v1/nodes/agent-1")).metadata.annotations["kilo.squat.ai/force-endpoint"]).toBe("198.51.100.61:51820");
    expect((await get("/api/v1/nodes/agent-2")).metadata.annotations["kilo.squat.ai/persistent-keepalive"]).toBeDefined();

    // The DaemonSet controller made one pod per node; the scheduler bound them; kwok runs them.
    await cp.waitFor("a Running kilo pod on every node", 120, async () => {
      const pods = (await get("/api/v1/namespaces/kube-system/pods?labelSelector=app.kubernetes.io%2Fname%3Dkilo")).items as any[];
      const running = pods.filter((p) => p.status.phase === "Running").map((p) => p.spec.nodeName).sort();
      return JSON.stringify(running) === JSON.stringify([...NODES].sort());
    });
  });

  test("a plan right after the apply has no changes (exit code 0)", async () => {
    expect((await mesh.plan({ detailedExitcode: true })).code).toBe(0);
  });

  test("the peers stack creates a Peer the API accepts against the CRD; re-planned with no change", async () => {
    peers = new TerraformCli(synth().peers);
    await peers.init();
    await apply(peers);
    const peer = await get("/apis/kilo.squat.ai/v1alpha1/peers/laptop");
    expect(peer.spec).toMatchObject({ publicKey: PEER_KEY, allowedIPs: ["10.5.0.1/32"], persistentKeepalive: 25 });
    expect((await peers.plan({ detailedExitcode: true })).code).toBe(0);
  });

  test("changing a Kilo option (mtu) updates objects in place; nothing is replaced", async () => {
    synth(1380);
    const r = await apply(mesh);
    const changed = Object.entries(r.plan).filter(([, a]) => a !== "noop" && a !== "read");
    expect(changed.length).toBeGreaterThan(0);
    expect(changed.every(([, a]) => a === "update")).toBe(true);
    const ds = await get("/apis/apps/v1/namespaces/kube-system/daemonsets/kilo");
    expect(JSON.stringify(ds.spec.template.spec.containers)).toContain("--mtu=1380");
    expect((await mesh.plan({ detailedExitcode: true })).code).toBe(0);
  });

  test("destroy removes the Peer, then every mesh object and the nodes' annotations", async () => {
    await peers.destroy();
    expect((await cp.api("GET", "/apis/kilo.squat.ai/v1alpha1/peers/laptop")).status).toBe(404);
    await mesh.destroy();
    for (const path of ["/apis/apps/v1/namespaces/kube-system/daemonsets/kilo", "/api/v1/namespaces/kube-system/configmaps/kilo",
      "/apis/rbac.authorization.k8s.io/v1/clusterroles/kilo", "/api/v1/namespaces/kube-system/serviceaccounts/kilo"]) {
      expect((await cp.api("GET", path)).status).toBe(404);
    }
    // A CRD's deletion finishes once its objects are gone.
    await cp.waitFor("the Peer CRD deleted", 60, async () =>
      (await cp.api("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/peers.kilo.squat.ai")).status === 404);
    for (const n of NODES) {
      const ann = (await get(`/api/v1/nodes/${n}`)).metadata.annotations ?? {};
      expect(Object.keys(ann).filter((k) => k.startsWith("kilo.squat.ai/"))).toEqual([]);
    }
  });
});
