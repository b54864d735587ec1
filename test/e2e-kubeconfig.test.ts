/**
 * The user's path after a deploy, as far as this machine allows: the cluster stack deployed to lab
 * hosts → the kubeconfig the K3sServer fetches and writes (`kubeconfigPath`) works with `kubectl` →
 * the mesh stack, with the Kubernetes provider the library wires from the deployed server (no
 * `kubernetesProvider`: server URL, CA, client certificate and key through cross-stack references),
 * applies against that API. Real `terraform`, real random/local/kubernetes providers, real kubectl
 * 1.33.4 (built by tools/build.sh).
 *
 * What answers: K3s cannot be built here, so the server host runs the STAND-IN K3s
 * (test/harness/stand-in-k3s/), told by its `external-api` switch to hand out, as
 * /etc/rancher/k3s/k3s.yaml, the CA and an admin client certificate of a REAL Kubernetes control
 * plane (test/harness/control-plane.ts: kube-apiserver 1.33.4 on kine, controller manager,
 * scheduler), which runs on the test machine's lab-bridge address. The server host's port 6443
 * answers the test machine (kubectl, terraform) with that real API — a TCP forward inside the host,
 * TLS end to end between client and kube-apiserver, whose certificate is valid for the host's
 * address — and answers the other hosts (the agents fetching /cacerts to check their token's CA
 * hash) with the stand-in's supervisor: real K3s serves both on one listener, the stand-in cannot.
 * The Nodes are kwok's (it plays their kubelets); no kubelet, K3s or Kilo runs anywhere.
 */
import { spawnSync } from "child_process";
import { createHash } from "crypto";
import { existsSync, mkdirSync, readFileSync, statSync } from "fs";
import { request } from "https";
import { join } from "path";
import { App, TerraformStack } from "cdktf";
import { K3sAgent, K3sServer, KiloMesh } from "../lib";
import { ControlPlane, startControlPlane, tool } from "./harness/control-plane";
import { createLab, Lab, LabHost } from "./harness/lab";
import { serveStandIn, STAND_IN_INSTALLER_URL, standInEvents } from "./harness/stand-in";
import { synthesizeIn, terraformBinary, TerraformCli } from "./harness/terraform-cli";
import { applyJson, JsonRun } from "./harness/terraform-json";

jest.setTimeout(600_000);

const NET = "203.0.113";
const HOSTS = [
  { name: "server", address: `${NET}.70` },
  { name: "agent-1", address: `${NET}.71` },
  { name: "agent-2", address: `${NET}.72` },
];
const NODES = HOSTS.map((x) => x.name);
const SERVER = HOSTS[0].address;
/** Where, inside the server host, the forward to the real API listens. */
const FORWARD_PORT = 16443;

const canRun = process.getuid?.() === 0 && ["iptables", "socat", "sshd", "unshare", "nsenter", "ip", "openssl", "curl", "nc"]
  .every((b) => spawnSync("sh", ["-c", `command -v ${b}`]).status === 0);
if (!canRun && process.env.CI) throw new Error("e2e-kubeconfig needs root and iptables, socat, sshd, unshare, nsenter, ip, openssl, curl, nc");
const describeReal = canRun ? describe : describe.skip;

let lab: Lab;
let cp: ControlPlane;
let work: string;
let cluster: TerraformCli;
let mesh: TerraformCli;
let meshJson: any;
const kubeconfigPath = () => join(work, "kubeconfig.yaml");
const h = (name: string): LabHost => lab.host(name);

/** The user's program: the cluster stack and, in its own stack, the mesh with its default provider. */
function synth(): void {
  const out = join(work, "cdktf.out");
  synthesizeIn(work, () => {
    const app = new App({ outdir: out });
    const stack = new TerraformStack(app, "cluster");
    const ssh = (x: LabHost) => ({ user: x.sshUser, privateKeyPath: lab.privateKeyPath, hostKey: x.hostKey, timeout: "20s" });
    const install = { scriptUrl: STAND_IN_INSTALLER_URL, readyTimeoutSeconds: 30 };
    const server = new K3sServer(stack, "server", {
      host: { address: SERVER, location: "loc-server", ssh: ssh(h("server")) },
      install, kubeconfigPath: kubeconfigPath(), outputs: true,
    });
    for (const name of ["agent-1", "agent-2"]) {
      new K3sAgent(stack, name, { server, install, drainTimeoutSeconds: 20, host: { address: h(name).address, location: `loc-${name}`, ssh: ssh(h(name)) } });
    }
    new KiloMesh(new TerraformStack(app, "mesh"), "kilo", { server });
    app.synth();
  });
  meshJson = JSON.parse(readFileSync(join(out, "stacks", "mesh", "cdk.tf.json"), "utf8"));
}

async function apply(tf: TerraformCli): Promise<JsonRun> {
  const r = await applyJson(tf, { check: false });
  if (!r.ok) throw new Error(`apply in ${tf.stackDir} failed:\n${r.errors.map((e) => `${e.summary}: ${e.detail}`).join("\n")}\n${r.result.stderr}`);
  return r;
}

/** kubectl 1.33.4 (built from k8s.io/kubernetes by tools/build.sh), with the deployed kubeconfig. */
function kubectl(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(tool("kubectl"), ["--kubeconfig", kubeconfigPath(), "--request-timeout=20s", ...args],
    { encoding: "utf8", timeout: 60_000, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: work } });
  return { code: r.status ?? 1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

const get = async (path: string) => (await cp.api("GET", path)).body;

describeReal("kubeconfig from a deployed (stand-in) K3s server → kubectl and the default-wired mesh provider on a real API", () => {
  beforeAll(async () => {
    terraformBinary();
    lab = await createLab({ hosts: HOSTS });
    serveStandIn(lab);
    cp = await startControlPlane({ bindAddress: lab.adminAddress, extraIpSans: [SERVER] });
    await cp.addNodes(NODES);
    work = join(lab.dir, "project");
    mkdirSync(work);

    const server = h("server");
    // The stand-in's switch: hand out the real control plane's CA and admin credentials (0600/0700).
    await server.run("umask 077; mkdir -p /var/lib/k3s-stand-in/external-api; cat > /var/lib/k3s-stand-in/external-api/ca.crt", { input: cp.caPem });
    await server.run("umask 077; cat > /var/lib/k3s-stand-in/external-api/client-admin.crt", { input: cp.adminCertPem });
    await server.run("umask 077; cat > /var/lib/k3s-stand-in/external-api/client-admin.key", { input: cp.adminKeyPem });
    // Port 6443 from the test machine → the forward → the real API (TCP only: TLS stays end to end).
    await server.run(`socat TCP-LISTEN:${FORWARD_PORT},bind=${SERVER},reuseaddr,fork TCP:${lab.adminAddress}:${cp.port} </dev/null >/run/api-forward.log 2>&1 &
      echo $! > /run/api-forward.pid
      iptables -t nat -A PREROUTING -s ${lab.adminAddress}/32 -d ${SERVER}/32 -p tcp --dport 6443 -j REDIRECT --to-ports ${FORWARD_PORT}
      i=0; while ! nc -z ${SERVER} ${FORWARD_PORT} && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; nc -z ${SERVER} ${FORWARD_PORT}`);

    synth();
    cluster = new TerraformCli(join(work, "cdktf.out", "stacks", "cluster"));
    mesh = new TerraformCli(join(work, "cdktf.out", "stacks", "mesh"));
    await Promise.all([cluster.init(), mesh.init()]);
  });

  afterAll(async () => {
    // By id: the forward (in the server host), the control plane's processes, the lab.
    await lab?.host("server").exec("[ -f /run/api-forward.pid ] && kill \"$(cat /run/api-forward.pid)\"; rm -f /run/api-forward.pid").catch(() => undefined);
    await cp?.stop();
    await lab?.cleanup();
  });

  test("the mesh stack's provider is wired from the cluster stack's server, not given", () => {
    const p = meshJson.provider.kubernetes;
    expect(p).toHaveLength(1);
    expect(p[0].config_path).toBeUndefined();
    // The URL is known at synth; the credentials are the deployed server's, read from the cluster
    // stack's state (cdktf's cross-stack references).
    expect(p[0].host).toBe(`https://${SERVER}:6443`);
    for (const k of ["cluster_ca_certificate", "client_certificate", "client_key"]) {
      expect(String(p[0][k])).toContain("data.terraform_remote_state.cross-stack-reference-input-cluster.outputs.");
    }
  });

  test("deploy the cluster: the kubeconfig is written 0600, pointing at the server's address, with the real API's CA", async () => {
    await apply(cluster);
    const st = statSync(kubeconfigPath());
    expect(st.mode & 0o777).toBe(0o600);
    const kc = readFileSync(kubeconfigPath(), "utf8");
    expect(kc).toContain(`server: "https://${SERVER}:6443"`);
    const ca = /certificate-authority-data: "([A-Za-z0-9+/=]+)"/.exec(kc)?.[1];
    expect(Buffer.from(ca ?? "", "base64").toString("utf8")).toBe(cp.caPem);
    // The same document as the sensitive output.
    expect((await cluster.run(["output", "-raw", "server_kubeconfig"])).stdout).toBe(kc);
  });

  test("the agents joined the stand-in server with a token whose CA hash is the real API's CA", async () => {
    const hash = createHash("sha256").update(cp.caPem).digest("hex");
    expect((await standInEvents(h("server"))).filter((e) => e.kind === "server-ca").map((e) => e.text)).toEqual([`external-api ca-hash=${hash}`]);
    expect((await h("server").readFile("/var/lib/rancher/k3s/server/token")).startsWith(`K10${hash}::server:`)).toBe(true);
    for (const a of ["agent-1", "agent-2"]) {
      const ev = await standInEvents(h(a));
      expect(ev.filter((e) => e.kind === "service-start").map((e) => e.text).join("\n")).toContain(`ca-hash-verified=${hash}`);
    }
  });

  test("kubectl with the written kubeconfig reaches the real API at https://<server>:6443: nodes, identity, version", () => {
    const nodes = kubectl("get", "nodes", "-o", "name");
    expect(nodes.stderr).toBe("");
    expect(nodes.code).toBe(0);
    expect(nodes.stdout.trim().split("\n").sort()).toEqual(NODES.map((n) => `node/${n}`).sort());
    // Ready: kwok plays these nodes' kubelets.
    const ready = kubectl("get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type==\"Ready\")].status} {end}");
    expect(ready.stdout.trim().split(" ").sort()).toEqual(NODES.map((n) => `${n}=True`).sort());
    // Authenticated by the client certificate the stand-in handed out: the real API's admin.
    const who = kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}");
    expect(who.code).toBe(0);
    expect(who.stdout).toBe("test-admin");
    const version = JSON.parse(kubectl("version", "-o", "json").stdout);
    expect(version.serverVersion.gitVersion).toBe("v1.33.4");
    expect(version.clientVersion.gitVersion).toBe("v1.33.4");
  });

  test("a client without the kubeconfig's certificate is refused by that API (the certificate is what admits kubectl)", async () => {
    const r = await new Promise<{ status: number; body: string }>((resolveP, reject) => {
      const req = request(`https://${SERVER}:6443/api/v1/nodes`, { ca: cp.caPem, timeout: 20_000 }, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (d) => (body += d)).on("end", () => resolveP({ status: res.statusCode ?? 0, body }));
      });
      req.on("timeout", () => req.destroy(new Error("timed out")));
      req.on("error", reject);
      req.end();
    });
    expect(r.status).toBe(403);
    expect(r.body).toContain("system:anonymous");
  });

  test("deploy the mesh with its default provider: CRD established, DaemonSet rolled out, node annotations", async () => {
    const r = await apply(mesh);
    expect(Object.entries(r.plan).filter(([, a]) => a !== "create" && a !== "read")).toEqual([]);
    const crd = await get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/peers.kilo.squat.ai");
    expect(crd.status.conditions.find((c: any) => c.type === "Established")?.status).toBe("True");
    const ds = await get("/apis/apps/v1/namespaces/kube-system/daemonsets/kilo");
    expect(ds.status.numberReady).toBe(NODES.length);
    for (const n of NODES) {
      const node = await get(`/api/v1/nodes/${n}`);
      expect(node.metadata.annotations["kilo.squat.ai/location"]).toBe(`loc-${n}`);
    }
    // kubectl sees the same.
    expect(kubectl("-n", "kube-system", "get", "daemonset", "kilo", "-o", "jsonpath={.status.numberReady}").stdout).toBe(String(NODES.length));
    expect((await mesh.plan({ detailedExitcode: true })).code).toBe(0);
  });

  test("destroy the mesh, then the cluster: objects, annotations, kubeconfig file and K3s gone", async () => {
    await mesh.destroy();
    expect((await cp.api("GET", "/apis/apps/v1/namespaces/kube-system/daemonsets/kilo")).status).toBe(404);
    for (const n of NODES) {
      const ann = (await get(`/api/v1/nodes/${n}`)).metadata.annotations ?? {};
      expect(Object.keys(ann).filter((k) => k.startsWith("kilo.squat.ai/"))).toEqual([]);
    }
    await cluster.destroy();
    expect(existsSync(kubeconfigPath())).toBe(false);
    for (const x of HOSTS) {
      expect((await standInEvents(h(x.name))).filter((e) => e.kind === "uninstall")).toHaveLength(1);
    }
  });
});
