/**
 * The cluster's first stack under OpenTofu: the README says the synthesized JSON runs on Terraform
 * and OpenTofu alike, and this is what backs it. OpenTofu 1.12.6's `tofu`, built from its Go module
 * by tools/build.sh, deploys the cluster a user writes (server, two agents, PeerFirewall, the
 * kubeconfig) onto real lab hosts, re-plans with no change, grows it by an agent, and destroys it.
 *
 * Real: `tofu`, the random and local providers (installed from the mirror under
 * registry.opentofu.org, OpenTofu's default registry), the hosts, SSH, ufw, our scripts.
 * Stand-in: K3s (test/harness/stand-in-k3s/), as in test/e2e-cluster.test.ts, which runs the same
 * steps and many more under Terraform.
 */
import { spawnSync } from "child_process";
import { existsSync, readFileSync } from "fs";
import { join } from "path";
import { App, TerraformOutput, TerraformStack } from "cdktf";
import { K3sAgent, K3sNode, K3sServer, PeerFirewall } from "../lib";
import { createLab, Lab, LabHost } from "./harness/lab";
import { serveStandIn, STAND_IN_INSTALLER_URL, standInCounts } from "./harness/stand-in";
import { synthesizeIn, TerraformCli } from "./harness/terraform-cli";
import { realProviders, tofuBinary } from "./harness/terraform-env";
import { applyJson, destroyJson, JsonRun, stateResources } from "./harness/terraform-json";

jest.setTimeout(600000);

// Addresses of this file's own: no other lab test uses 203.0.113.14x.
const NET = "203.0.113";
const canRun = process.getuid?.() === 0 && ["ufw", "iptables", "socat", "sshd", "unshare", "nsenter", "ip", "openssl"]
  .every((b) => spawnSync("sh", ["-c", `command -v ${b}`]).status === 0);
if (!canRun && process.env.CI) throw new Error("the OpenTofu E2E needs root and ufw, iptables, socat, sshd, unshare, nsenter, ip, openssl");
const describeReal = canRun ? describe : describe.skip;

let lab: Lab;
let tofu: TerraformCli;
const h = (name: string): LabHost => lab.host(name);
const stackDir = () => join(lab.dir, "cdktf.out", "stacks", "cluster");

function clusterStack(agents: string[]): void {
  const app = new App({ outdir: join(lab.dir, "cdktf.out") });
  const stack = new TerraformStack(app, "cluster");
  const ssh = (x: LabHost) => ({ user: x.sshUser, privateKeyPath: lab.privateKeyPath, hostKey: x.hostKey, timeout: "20s" });
  const install = { scriptUrl: STAND_IN_INSTALLER_URL, readyTimeoutSeconds: 30 };
  const server = new K3sServer(stack, "server", {
    host: { address: h("server").address, ssh: ssh(h("server")) }, install, kubeconfigPath: join(lab.dir, "kubeconfig"),
  });
  const nodes: K3sNode[] = [server, ...agents.map((name) =>
    new K3sAgent(stack, name, { server, install, drainTimeoutSeconds: 20, host: { address: h(name).address, ssh: ssh(h(name)) } }))];
  new PeerFirewall(stack, "firewall", { nodes, adminCidrs: [`${lab.adminAddress}/32`], rateLimitSsh: false });
  new TerraformOutput(stack, "kubeconfig", { value: server.kubeconfig, sensitive: true });
  synthesizeIn(lab.dir, () => app.synth());
}

async function apply(): Promise<JsonRun> {
  const r = await applyJson(tofu, { check: false });
  if (!r.ok) throw new Error(`tofu apply failed:\n${r.errors.map((e) => `${e.summary}: ${e.detail}`).join("\n")}\n${r.result.stderr}`);
  return r;
}

describeReal("the cluster's first stack on real hosts with OpenTofu (K3s is a stand-in)", () => {
  beforeAll(async () => {
    lab = await createLab({
      hosts: [
        { name: "server", address: `${NET}.140` },
        { name: "agent-a", address: `${NET}.141`, sudoUser: true },
        { name: "agent-b", address: `${NET}.142` },
      ],
    });
    serveStandIn(lab);
    clusterStack(["agent-a"]);
    tofu = new TerraformCli(stackDir(), { binary: tofuBinary().binary });
  });

  afterAll(async () => {
    await lab?.cleanup();
  });

  test("tofu is OpenTofu 1.12.6 and init installs the real providers from registry.opentofu.org", async () => {
    const v = await tofu.run(["version"]);
    expect(v.stdout).toMatch(/^OpenTofu v1\.12\.6$/m);
    const init = await tofu.init();
    expect(init.stdout).toMatch(/Installed hashicorp\/random v3\.7\.2/);
    const lock = readFileSync(join(stackDir(), ".terraform.lock.hcl"), "utf8");
    // The cluster stack's providers: random and local (the mesh's kubernetes is not in this stack).
    const required = Object.keys(JSON.parse(readFileSync(join(stackDir(), "cdk.tf.json"), "utf8")).terraform.required_providers).sort();
    expect(required).toEqual(["local", "random"]);
    for (const type of required) {
      const p = realProviders().find((x) => x.type === type)!;
      expect(lock).toMatch(new RegExp(`provider "registry\\.opentofu\\.org/hashicorp/${type}" \\{\\s*version\\s*=\\s*"${p.version.replace(/\./g, "\\.")}"`));
    }
  });

  test("a fresh deploy succeeds; ufw is active and K3s installed on every node; the kubeconfig is written", async () => {
    const r = await apply();
    expect(Object.entries(r.plan).filter(([, a]) => a !== "create" && a !== "read")).toEqual([]);
    for (const name of ["server", "agent-a"]) {
      expect(await h(name).run("ufw status")).toMatch(/^Status: active$/m);
      expect((await standInCounts(h(name))).installs).toBe(1);
    }
    expect(existsSync(join(lab.dir, "kubeconfig"))).toBe(true);
    expect(readFileSync(join(lab.dir, "kubeconfig"), "utf8")).toContain(`server: "https://${h("server").address}:6443"`);
  });

  test("a plan right after the apply has no changes (exit code 0)", async () => {
    const r = await tofu.plan({ detailedExitcode: true });
    expect(r.code).toBe(0);
  });

  test("adding an agent installs only it and converges every firewall", async () => {
    clusterStack(["agent-a", "agent-b"]);
    const r = await apply();
    expect(r.provisioned.filter((a) => /_install_/.test(a))).toEqual([expect.stringMatching(/^terraform_data\.agent-b_install_/)]);
    expect(r.provisioned.filter((a) => a.startsWith("terraform_data.firewall_")).length).toBe(3);
    expect((await standInCounts(h("server"))).installs).toBe(1);
    expect((await standInCounts(h("agent-b"))).installs).toBe(1);
    expect((await tofu.plan({ detailedExitcode: true })).code).toBe(0);
  });

  test("destroy drains and uninstalls every node and empties the state", async () => {
    const r = await destroyJson(tofu, { check: false });
    expect(r.errors).toEqual([]);
    expect(r.ok).toBe(true);
    expect(Object.keys(await stateResources(tofu))).toEqual([]);
    for (const name of ["server", "agent-a", "agent-b"]) {
      expect((await standInCounts(h(name))).uninstalls).toBe(1);
      expect((await h(name).exec("test -e /usr/local/bin/k3s || test -e /etc/rancher/k3s/config.yaml")).code).not.toBe(0);
    }
    expect(existsSync(join(lab.dir, "kubeconfig"))).toBe(false);
  });
});
