import { execFileSync } from "child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import { parse } from "yaml";
import { K3sServer, K3S_DEFAULT_VERSION } from "../lib";
import { newStack, provisioners, resourceOf, synth, logicalId } from "./util/synth";

// A fake key (not key material), built at run time so no key block is ever committed.
const FAKE_KEY_HEADER = ["-----BEGIN", "OPENSSH", "PRIVATE", "KEY-----"].join(" ");

const ssh = { privateKeyPath: "~/.ssh/id_ed25519" };

function serverStack(props: Partial<ConstructorParameters<typeof K3sServer>[2]> = {}) {
  const { stack } = newStack();
  const server = new K3sServer(stack, "server", { host: { address: "203.0.113.10", ssh }, ...props });
  return { stack, server, out: synth(stack) };
}

function uploadedConfig(install: any): any {
  const file = provisioners(install).find((p) => p.type === "file");
  return parse(file!.content);
}

describe("K3sServer", () => {
  test("generates a server token and a separate agent token without special characters", () => {
    const { out } = serverStack();
    const passwords = Object.entries(out.resource.random_password);
    expect(passwords.map(([k]) => k).sort()).toEqual([expect.stringMatching(/^server_agent-token_/), expect.stringMatching(/^server_server-token_/)]);
    for (const [, p] of passwords) {
      expect(p.special).toBe(false);
      expect(p.length).toBeGreaterThanOrEqual(32);
    }
  });

  test("renders a Kilo-ready, secure config.yaml", () => {
    const { out } = serverStack();
    const config = uploadedConfig(resourceOf(out, "terraform_data", "server_install"));
    expect(config).toMatchObject({
      "flannel-backend": "none",
      "disable": ["servicelb"],
      "kube-proxy-arg": ["nodeport-addresses=10.4.0.0/16"],
      "secrets-encryption": true,
      "write-kubeconfig-mode": "0600",
      "node-name": "server",
      "tls-san": ["203.0.113.10"],
      "cluster-cidr": "10.42.0.0/16",
      "service-cidr": "10.43.0.0/16",
    });
    expect(config.token).toMatch(/^\$\{jsonencode\(random_password\.server_server-token_\w+\.result\)\}$/);
    expect(config["agent-token"]).toMatch(/^\$\{jsonencode\(random_password\.server_agent-token_\w+\.result\)\}$/);
    expect(config).not.toHaveProperty("node-external-ip");
    // NetworkPolicy stays enforced by K3s's embedded controller.
    expect(config).not.toHaveProperty("disable-network-policy");
  });

  test("passes every node setting into the config", () => {
    const { out } = serverStack({
      host: { address: "203.0.113.10", privateAddress: "10.0.0.5", publicAddressOnInterface: false, ssh },
      nodeName: "cp-1",
      labels: { "topology.kubernetes.io/region": "fra1" },
      taints: ["dedicated=control-plane:NoSchedule"],
      tlsSans: ["k3s.example.com"],
      apiAddress: "k3s.example.com",
      clusterCidr: "10.52.0.0/16",
      serviceCidr: "10.53.0.0/16",
      secretsEncryption: false,
      extraConfig: { "disable": ["traefik"], "kubelet-arg": ["max-pods=150"] },
    });
    const config = uploadedConfig(resourceOf(out, "terraform_data", "server_install"));
    expect(config).toMatchObject({
      "node-name": "cp-1",
      "node-ip": "10.0.0.5",
      "node-external-ip": "203.0.113.10",
      "node-label": ["topology.kubernetes.io/region=fra1"],
      "node-taint": ["dedicated=control-plane:NoSchedule"],
      "tls-san": ["k3s.example.com", "203.0.113.10"],
      "cluster-cidr": "10.52.0.0/16",
      "service-cidr": "10.53.0.0/16",
      "secrets-encryption": false,
      "disable": ["servicelb", "traefik"],
      "kubelet-arg": ["max-pods=150"],
    });
    const fetch = out.data!.local_command[Object.keys(out.data!.local_command)[0]];
    expect(fetch.stdin).toContain("https://k3s.example.com:6443");
  });

  test("installs the pinned version with the official script by default, overridable", () => {
    const def = serverStack().out;
    const script = provisioners(resourceOf(def, "terraform_data", "server_install")).filter((p) => p.type === "remote-exec")[1].inline[0];
    expect(script).toContain(`K3S_VERSION='${K3S_DEFAULT_VERSION}'`);
    expect(script).toContain(`INSTALLER_URL='https://raw.githubusercontent.com/k3s-io/k3s/${K3S_DEFAULT_VERSION.replace("+", "%2B")}/install.sh'`);
    expect(script).not.toContain("get.k3s.io");
    expect(script).toContain("SKIP_DOWNLOAD=false");
    expect(K3S_DEFAULT_VERSION).toMatch(/^v1\.\d+\.\d+\+k3s\d+$/);

    const custom = serverStack({ version: "v1.32.8+k3s1", install: { scriptUrl: "file:///opt/k3s/install.sh", skipDownload: true, readyTimeoutSeconds: 60 } }).out;
    const s2 = provisioners(resourceOf(custom, "terraform_data", "server_install")).filter((p) => p.type === "remote-exec")[1].inline[0];
    expect(s2).toContain("K3S_VERSION='v1.32.8+k3s1'");
    expect(s2).toContain("INSTALLER_URL='file:///opt/k3s/install.sh'");
    expect(s2).toContain("SKIP_DOWNLOAD=true");
    expect(s2).toContain("READY_TIMEOUT=60");
  });

  test("uploads the secret-bearing config with a file provisioner, never inline", () => {
    const { out } = serverStack();
    const install = resourceOf(out, "terraform_data", "server_install");
    const ps = provisioners(install);
    expect(ps.map((p) => p.type)).toEqual(["remote-exec", "file", "remote-exec"]);
    for (const p of ps.filter((x) => x.type === "remote-exec")) {
      expect(p.inline.join("\n")).not.toMatch(/random_password/);
      expect(p.inline[0].startsWith("#!/bin/sh\n")).toBe(true);
      expect(p.inline[0]).toContain("\nset -eu\n");
    }
    expect(ps[1].destination).toBe("/var/lib/cdktf-k3s-kilo/staging/k3s-config.yaml");
  });

  test("triggers hold digests only, never a token or key", () => {
    const { out } = serverStack();
    const install = resourceOf(out, "terraform_data", "server_install");
    expect(Object.keys(install.triggers_replace).sort()).toEqual(["text", "values"]);
    expect(install.triggers_replace.text).toMatch(/^[0-9a-f]{64}$/);
    expect(install.triggers_replace.values).toMatch(/^\$\{sha256\(/);
    const membership = resourceOf(out, "terraform_data", "server_membership");
    const stored = JSON.stringify([membership.triggers_replace, membership.input]);
    expect(stored).not.toMatch(/random_password|PRIVATE KEY|file\(/);
    expect(membership.input.private_key_path).toBe("~/.ssh/id_ed25519");
  });

  test("key content is used by create-time connections only", () => {
    const { stack } = newStack();
    new K3sServer(stack, "server", { host: { address: "203.0.113.10", ssh: { privateKey: `${FAKE_KEY_HEADER}\nabc\n`, agent: true } } });
    const out = synth(stack);
    const text = JSON.stringify(out);
    const install = resourceOf(out, "terraform_data", "server_install");
    expect(install.connection.private_key).toContain("BEGIN OPENSSH");
    const membership = resourceOf(out, "terraform_data", "server_membership");
    expect(JSON.stringify(membership)).not.toContain("BEGIN OPENSSH");
    expect(provisioners(membership)[0].connection.agent).toBe(true);
    expect(JSON.stringify(out.data)).not.toContain("BEGIN OPENSSH");
    expect(text.match(/BEGIN OPENSSH/g)).toHaveLength(1);
  });

  test("uninstalls on destroy with a connection read from state", () => {
    const { out } = serverStack();
    const membership = resourceOf(out, "terraform_data", "server_membership");
    const [destroy] = provisioners(membership);
    expect(destroy.when).toBe("destroy");
    expect(destroy.inline[0]).toContain("/usr/local/bin/k3s-uninstall.sh");
    expect(destroy.connection.host).toBe("${self.input.host}");
    expect(destroy.connection.private_key).toBe("${file(pathexpand(self.input.private_key_path))}");
  });

  test("after the uninstall, removes the fetched admin credentials from the deploying machine (node, no shell)", () => {
    const { out } = serverStack();
    const membership = resourceOf(out, "terraform_data", "server_membership");
    const steps = provisioners(membership);
    expect(steps).toHaveLength(2);
    const [, cleanup] = steps;
    expect(cleanup.when).toBe("destroy");
    expect(cleanup.interpreter.slice(0, 2)).toEqual(["node", "-e"]);
    // The same path the fetch writes (relative to Terraform's working directory).
    const fetch = Object.values<any>(out.data!.local_command)[0];
    expect(fetch.stdin).toContain(`abspath(\"${cleanup.command}\")`);
    expect(cleanup.command).toMatch(/^\.cdktf-k3s-kilo-secrets\/[0-9a-f]+\.json$/);
    // The program removes that file and its directory once empty, and nothing else.
    const dir = mkdtempSync(join(tmpdir(), "secrets-"));
    try {
      mkdirSync(join(dir, ".cdktf-k3s-kilo-secrets"));
      writeFileSync(join(dir, cleanup.command), "{}");
      writeFileSync(join(dir, "keep.json"), "{}");
      const run = () => execFileSync(cleanup.interpreter[0], [...cleanup.interpreter.slice(1), cleanup.command], { cwd: dir });
      run();
      expect(readdirSync(dir)).toEqual(["keep.json"]);
      run(); // nothing left to remove: still succeeds
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("fetches the kubeconfig after the install, every plan, through the local ssh client", () => {
    const { out } = serverStack();
    const [id, fetch] = Object.entries(out.data!.local_command)[0];
    expect(id).toMatch(/^server_credentials_/);
    expect(fetch.command).toBe("node");
    // The stack's own copy of the program (a TerraformAsset), relative to the stack directory.
    expect(fetch.arguments).toEqual([expect.stringMatching(/^assets\/server_credentials-program_\w+\/[0-9A-F]+\/fetch-kubeconfig\.cjs$/)]);
    expect(fetch.depends_on).toEqual([`terraform_data.${logicalId(out, "terraform_data", "server_install")}`]);
    expect(fetch.stdin).not.toMatch(/random_password|PRIVATE KEY/);
  });

  test("writes the kubeconfig to a 0600 local file when asked, as a sensitive value", () => {
    const { out } = serverStack({ kubeconfigPath: "./kubeconfig.yaml" });
    const file = Object.values(out.resource.local_sensitive_file)[0] as any;
    expect(file.filename).toBe(`${process.cwd()}/kubeconfig.yaml`); // relative to the project, not the stack dir
    expect(file.file_permission).toBe("0600");
    expect(file.content).toMatch(/^\$\{sensitive\(jsondecode\(data\.local_sensitive_file\.server_credentials-secrets_\w+\.content\)\.kubeconfig\)\}$/);
  });

  test("exposes sensitive credentials and the CA-pinned agent token", () => {
    const { stack, server } = newStack().stack ? (() => {
      const s = newStack();
      return { stack: s.stack, server: new K3sServer(s.stack, "server", { host: { address: "2001:db8::10", ssh } }) };
    })() : ({} as any);
    expect(server.apiServerUrl).toBe("https://[2001:db8::10]:6443");
    const { TerraformOutput } = require("cdktf");
    new TerraformOutput(stack, "token", { value: server.agentJoinToken, sensitive: true });
    new TerraformOutput(stack, "key", { value: server.clientKey, sensitive: true });
    const out = synth(stack);
    expect(out.output!.token.value).toMatch(/^\$\{sensitive\(join\("", \["K10", jsondecode\(data\.local_command\.server_credentials_\w+\.stdout\)\.ca_hash, "::node:", random_password\.server_agent-token_\w+\.result\]\)\)\}$/);
    expect(out.output!.key.value).toMatch(/^\$\{sensitive\(/);
  });

  test("adds the providers it needs once, and keeps a user's own", () => {
    const { stack } = newStack();
    const { provider } = require("@cdktf/provider-random");
    new provider.RandomProvider(stack, "mine");
    new K3sServer(stack, "a", { host: { address: "203.0.113.10", ssh }, clusterName: "one" });
    const out = synth(stack);
    expect(Object.keys(out.provider!.random)).toHaveLength(1);
    expect(out.provider!.local).toHaveLength(1);
  });

  test("escapes shell ${...} so Terraform does not read it as interpolation", () => {
    const { out } = serverStack();
    const script = provisioners(resourceOf(out, "terraform_data", "server_install"))[2].inline[0];
    expect(script).toContain("$${INSTALLER_URL#file://}");
    expect(script).not.toMatch(/[^$]\$\{(?!TfToken)[A-Za-z_]/);
  });
});
