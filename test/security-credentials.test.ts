/**
 * Credentials on the real `terraform` (1.11.4) with the stand-in providers (test/standin-providers:
 * the real providers' schemas, sensitive flags included) and, for the kubeconfig, a real lab host
 * running the STAND-IN K3s (test/harness/stand-in-k3s: not K3s, which cannot be downloaded here; it
 * writes a K3s-shaped /etc/rancher/k3s/k3s.yaml with a real client key). Run under the lab lock:
 *   flock /tmp/cdktf-lab.lock npx jest test/security-credentials.test.ts
 */
import { mkdtempSync, readFileSync, rmSync, statSync, readdirSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import { App, Fn, TerraformOutput, TerraformStack, TerraformVariable } from "cdktf";
import { parse } from "yaml";
import { K3sServer } from "../lib";
import { TerraformData, terraformLiteral } from "../lib/constructs/internal";
import { createTimeConnection } from "../lib/constructs/connection";
import { renderK3sConfig, serverConfig } from "../lib/render/k3s-config";
import { createLab, Lab } from "./harness/lab";
import { serveStandIn, STAND_IN_INSTALLER_URL } from "./harness/stand-in";
import { synthesizeIn, TerraformCli, terraformBinary } from "./harness/terraform-cli";
import { CDKTF_LATE_VALUES as LATE } from "../lib/constructs/late-values";

jest.setTimeout(600000);

let work: string;
beforeAll(() => {
  terraformBinary();
  work = mkdtempSync(join(tmpdir(), "security-credentials-"));
});
afterAll(() => { if (work) rmSync(work, { recursive: true, force: true }); });

// A node name that closes its quote and adds a key (K3s keeps the last of duplicate keys).
const HOSTILE = "n1\"\nwrite-kubeconfig-mode: \"0644";

/** A stack whose output is config.yaml exactly as K3sNode renders it, with the node name from a variable. */
async function renderedByTerraform(name: string, encode?: (v: string) => string): Promise<string> {
  const app = new App({ outdir: join(work, name) });
  const stack = new TerraformStack(app, name);
  const nodeName = new TerraformVariable(stack, "node_name", { type: "string" });
  const token = new TerraformVariable(stack, "token", { type: "string", sensitive: true });
  const config = serverConfig({
    nodeName: nodeName.stringValue, address: "203.0.113.10", publicAddressOnInterface: true, labels: {}, taints: [],
    extraConfig: {}, token: token.stringValue, agentToken: token.stringValue, tlsSans: ["203.0.113.10"],
    clusterCidr: "10.42.0.0/16", serviceCidr: "10.43.0.0/16", secretsEncryption: true,
  }, LATE);
  // The same call K3sNode makes (k3s-node.ts _wireInstall), then the same literal escaping.
  const text = terraformLiteral(encode ? renderK3sConfig(config, LATE, encode) : renderK3sConfig(config, LATE, (v) => Fn.jsonencode(v)));
  new TerraformOutput(stack, "config", { value: text, sensitive: true });
  synthesizeIn(work, () => app.synth());
  const tf = new TerraformCli(join(work, name, "stacks", name));
  await tf.init();
  await tf.apply({ vars: { node_name: HOSTILE, token: "t\"oken: x" } });
  return (await tf.outputJson()).config.value;
}

describe("config.yaml on real Terraform", () => {
  test("a hostile node name stays one scalar: no key is added, write-kubeconfig-mode stays 0600", async () => {
    const yaml = await renderedByTerraform("yaml-safe");
    const doc = parse(yaml, { uniqueKeys: true });
    expect(doc["node-name"]).toBe(HOSTILE);
    expect(doc.token).toBe("t\"oken: x");
    expect(doc["write-kubeconfig-mode"]).toBe("0600");
    expect(yaml.match(/^write-kubeconfig-mode:/gm)).toHaveLength(1);
  });

  test("the shape before this change (the value pasted inside quotes) lets the name add a key", async () => {
    const yaml = await renderedByTerraform("yaml-raw", (v) => JSON.stringify(v));
    expect(yaml.match(/^write-kubeconfig-mode:/gm)).toHaveLength(2);
    expect(() => parse(yaml, { uniqueKeys: true })).toThrow();
  });
});

describe("the admin credentials on real Terraform and a real host", () => {
  let lab: Lab;
  let tf: TerraformCli;
  let stackDir: string;
  const logs: string[] = [];

  beforeAll(async () => {
    lab = await createLab({ hosts: [{ name: "srv", address: "203.0.113.50" }] });
    serveStandIn(lab);
    const srv = lab.host("srv");
    const app = new App({ outdir: join(work, "cluster") });
    const stack = new TerraformStack(app, "cluster");
    const server = new K3sServer(stack, "server", {
      host: { address: srv.address, ssh: { privateKeyPath: lab.privateKeyPath, hostKey: srv.hostKey, timeout: "20s" } },
      install: { scriptUrl: STAND_IN_INSTALLER_URL, readyTimeoutSeconds: 30 },
    });
    new TerraformOutput(stack, "kubeconfig", { value: server.kubeconfig, sensitive: true });
    new TerraformOutput(stack, "ca_hash", { value: server.caHash });
    synthesizeIn(work, () => app.synth());
    stackDir = join(work, "cluster", "stacks", "cluster");
    tf = new TerraformCli(stackDir);
    await tf.init();
    for (const [cmd, log] of [["apply", "apply.log"], ["plan", "plan.log"]] as const) {
      const env = { TF_LOG: "trace", TF_LOG_PATH: join(work, log) };
      if (cmd === "apply") await tf.apply({ env });
      else await tf.plan({ env, detailedExitcode: true });
      logs.push(readFileSync(join(work, log), "utf8"));
    }
  });

  afterAll(async () => {
    try { if (tf) await tf.destroy({ check: false }); } finally { await lab?.cleanup(); }
  });

  /** The secrets as the host holds them: the admin client key (PEM and base64), the server token and the agent token. */
  async function secrets(): Promise<string[]> {
    const srv = lab.host("srv");
    const kube = parse(await srv.readFile("/etc/rancher/k3s/k3s.yaml"));
    const keyB64: string = kube.users[0].user["client-key-data"];
    const keyPem = Buffer.from(keyB64, "base64").toString("utf8");
    const keyLine = keyPem.split("\n").find((l) => l.length > 40 && !l.startsWith("-----"))!;
    const config = parse(await srv.readFile("/etc/rancher/k3s/config.yaml"));
    const token: string = config.token;
    const agentToken: string = config["agent-token"];
    expect(keyLine).toBeTruthy();
    expect(token.length).toBeGreaterThan(20);
    expect(agentToken.length).toBeGreaterThan(20);
    expect(agentToken).not.toBe(token);
    return [keyB64.slice(0, 40), keyLine, token, agentToken];
  }

  test("the kubeconfig reaches Terraform (sensitive output) with the host's client key", async () => {
    const out = await tf.outputJson();
    expect(out.kubeconfig.sensitive).toBe(true);
    const [, keyLine] = await secrets();
    const kube = parse(out.kubeconfig.value);
    expect(Buffer.from(kube.users[0].user["client-key-data"], "base64").toString("utf8")).toContain(keyLine);
    expect(out.ca_hash.value).toMatch(/^[0-9a-f]{64}$/);
  });

  test("no token or key in Terraform's TRACE logs of apply and plan", async () => {
    expect(logs).toHaveLength(2);
    for (const log of logs) {
      expect(log).toContain("local_command"); // the log is the real one, with the data source read in it
      for (const s of await secrets()) expect(log).not.toContain(s);
    }
  });

  test("local_command's stdout (not sensitive in the provider's schema) holds public parts only", async () => {
    const show = await tf.showJson();
    const resources: any[] = show.values.root_module.resources;
    const fetch = resources.find((r) => r.type === "local_command" && r.mode === "data");
    const stdout = JSON.parse(fetch.values.stdout);
    expect(Object.keys(stdout).sort()).toEqual(["api_server_url", "ca_hash", "cluster_ca_certificate", "secrets_file"]);
    for (const s of await secrets()) expect(fetch.values.stdout).not.toContain(s);
  });

  test("in `terraform show -json`, every value holding a secret is marked sensitive; `terraform show` prints none", async () => {
    const show = await tf.showJson();
    const found: string[] = [];
    const unmarked: string[] = [];
    const walk = (v: any, sens: any, path: string, needles: string[]) => {
      if (sens === true) { if (needles.some((n) => JSON.stringify(v).includes(n))) found.push(path); return; }
      if (typeof v === "string") { if (needles.some((n) => v.includes(n))) unmarked.push(path); return; }
      if (v && typeof v === "object") for (const k of Object.keys(v)) walk(v[k], sens?.[k], `${path}.${k}`, needles);
    };
    const needles = await secrets();
    for (const r of show.values.root_module.resources) walk(r.values, r.sensitive_values, r.address, needles);
    for (const [k, o] of Object.entries<any>(show.values.outputs ?? {})) walk(o.value, o.sensitive ? true : undefined, `output.${k}`, needles);
    expect(unmarked).toEqual([]);
    // Where the secrets are: the generated tokens, the secrets file read back, the kubeconfig output.
    expect(found.some((p) => p.startsWith("data.local_sensitive_file."))).toBe(true);
    expect(found.some((p) => p.startsWith("random_password."))).toBe(true);
    const human = await tf.run(["show", "-no-color"]);
    for (const s of needles) expect(human.stdout).not.toContain(s);
  });

  test("the local backend's state file gets the umask's mode (0644 under the common 022)", () => {
    const state = tf.statePath!;
    expect(readFileSync(state, "utf8")).toContain("random_password");
    expect(statSync(state).mode & 0o777).toBe(0o666 & ~process.umask());
  });

  test("Terraform makes each uploaded script 0777 (its default place is /tmp); ssh.scriptPath in a 0700 directory made beforehand keeps others out", async () => {
    const srv = lab.host("srv");
    // The window: Terraform's `chmod 0777` before running each script (in its own debug log), and
    // the blank copies it leaves behind keep that mode, in world-enterable /tmp.
    expect(logs[0]).toMatch(/starting remote command: chmod 0777 \/tmp\/terraform_\d+\.sh/);
    const left = (await srv.run("stat -c '%a %s %n' /tmp/terraform_*.sh")).trim().split("\n");
    expect(left.length).toBeGreaterThan(1);
    for (const l of left) expect(l).toMatch(/^777 0 \/tmp\/terraform_\d+\.sh$/);
    expect((await srv.run("stat -c %a /tmp")).trim()).toBe("1777");

    // The opt-in: a script path inside a directory only the login user can enter, made beforehand
    // (by the image or cloud-init: Terraform has no way to make one without a script of its own).
    await srv.run("install -d -m 0700 -o root /root/.terraform-scripts");
    const app = new App({ outdir: join(work, "script-path") });
    const stack = new TerraformStack(app, "script-path");
    const host = { address: srv.address, ssh: { privateKeyPath: lab.privateKeyPath, hostKey: srv.hostKey, timeout: "20s", scriptPath: "/root/.terraform-scripts/terraform_%RAND%.sh" } };
    const step = new TerraformData(stack, "step", {});
    step.connection = createTimeConnection(host);
    step.provisioners = [{ type: "remote-exec", inline: ["#!/bin/sh", "set -eu", "echo \"ran as $0\""] }];
    synthesizeIn(work, () => app.synth());
    const cli = new TerraformCli(join(work, "script-path", "stacks", "script-path"));
    await cli.init();
    const log = join(work, "script-path.log");
    const r = await cli.apply({ env: { TF_LOG: "debug", TF_LOG_PATH: log } });
    expect(r.stdout).toMatch(/ran as \/root\/\.terraform-scripts\/terraform_\d+\.sh/);
    expect(readFileSync(log, "utf8")).toMatch(/starting remote command: chmod 0777 \/root\/\.terraform-scripts\/terraform_\d+\.sh/);
    // Still 0777, as Terraform makes it, but inside a directory no other user can enter.
    expect((await srv.run("stat -c '%a %U' /root/.terraform-scripts")).trim()).toBe("700 root");
    expect((await srv.run("stat -c '%a %s' /root/.terraform-scripts/terraform_*.sh")).trim()).toBe("777 0");
  });

  test("the secrets file is 0600 in a 0700 directory under Terraform's working directory", () => {
    const dir = join(stackDir, ".cdktf-k3s-kilo-secrets");
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const files = readdirSync(dir);
    expect(files).toHaveLength(1);
    expect(statSync(join(dir, files[0])).mode & 0o777).toBe(0o600);
  });
});
