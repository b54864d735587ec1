/**
 * SSH host keys at synth: unpinned hosts are listed in one warning per stack, the strict mode
 * refuses them, tokens are accepted, and a bastion with both hops pinned gets a `host_key` that
 * Terraform before 1.16.0 (which checks the bastion against `host_key`) and after both read right.
 * The real-Terraform proof of the last point is in test/host-keys-terraform.test.ts.
 */
import { Fn, LocalBackend, S3Backend, TerraformStack, TerraformVariable, Testing } from "cdktf";
import { K3sAgent, K3sServer, REQUIRE_HOST_KEYS_CONTEXT } from "../lib";
import { pinnedHopsKnownHosts } from "../lib/constructs/connection";
import { newStack, provisioners, resourceOf, synth, validationErrors } from "./util/synth";

const KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
const ssh = { privateKeyPath: "~/.ssh/id_ed25519" };

/** A stack whose app has the strict mode on, as `context` in cdktf.json would set it. */
function strictStack(value: unknown): { stack: TerraformStack } {
  const app = Testing.app({ context: { [REQUIRE_HOST_KEYS_CONTEXT]: value } });
  return { stack: new TerraformStack(app, "cluster") };
}

function warnings(stack: any): string[] {
  return stack.node.metadata.filter((m: any) => m.type === "@cdktf/warn").map((m: any) => String(m.data));
}

describe("unpinned host keys", () => {
  test("one warning per stack lists every unpinned node and bastion, and nothing pinned", () => {
    const { stack } = newStack();
    const server = new K3sServer(stack, "s", { host: { address: "203.0.113.10", ssh: { ...ssh, hostKey: KEY_A } } });
    new K3sAgent(stack, "a1", { server, host: { address: "203.0.113.11", ssh } });
    new K3sAgent(stack, "a2", { server, host: { address: "10.0.0.12", ssh: { ...ssh, bastion: { host: "203.0.113.1" } } } });
    new K3sAgent(stack, "a3", { server, host: { address: "10.0.0.13", ssh: { ...ssh, bastion: { host: "203.0.113.1" } } } });
    synth(stack);
    const hk = warnings(stack).filter((w) => w.includes("host keys not pinned"));
    expect(hk).toHaveLength(1);
    expect(hk[0]).toContain("cluster/a1 (203.0.113.11), cluster/a2 (10.0.0.12), bastion 203.0.113.1 (of cluster/a2), cluster/a3 (10.0.0.13).");
    expect(hk[0]).not.toContain("cluster/s ");
    expect(hk[0]).toContain(REQUIRE_HOST_KEYS_CONTEXT);
  });

  test("a host or bastion address from Terraform is named so, never as cdktf's token text", () => {
    const { stack } = newStack();
    const ip = new TerraformVariable(stack, "ip", { type: "string" }).stringValue;
    const jump = new TerraformVariable(stack, "jump", { type: "string" }).stringValue;
    const server = new K3sServer(stack, "s", { host: { address: ip, ssh } });
    new K3sAgent(stack, "a", { server, host: { address: "10.0.0.12", ssh: { ...ssh, bastion: { host: jump } } } });
    synth(stack);
    const hk = warnings(stack).filter((w) => w.includes("host keys not pinned"));
    expect(hk).toHaveLength(1);
    expect(hk[0]).toContain("cluster/s (address from Terraform), cluster/a (10.0.0.12), bastion address from Terraform (of cluster/a).");
    expect(hk[0]).not.toMatch(/\$\{|TfToken/);
  });

  test("a large cluster's warning names the first ten hosts and counts the rest", () => {
    const { stack } = newStack();
    const server = new K3sServer(stack, "s", { host: { address: "203.0.113.10", ssh } });
    for (let i = 0; i < 25; i++) new K3sAgent(stack, `a${i}`, { server, host: { address: `198.51.100.${10 + i}`, ssh } });
    synth(stack);
    const hk = warnings(stack).filter((w) => w.includes("host keys not pinned"));
    expect(hk).toHaveLength(1);
    expect(hk[0]).toContain("cluster/s (203.0.113.10), cluster/a0 (198.51.100.10), ");
    expect(hk[0]).toContain("cluster/a8 (198.51.100.18) and 16 more. Pin them");
    expect(hk[0]).not.toContain("cluster/a9 ");
  });

  test("no warning when every host is pinned", () => {
    const { stack } = newStack();
    new K3sServer(stack, "s", { host: { address: "203.0.113.10", ssh: { ...ssh, hostKey: KEY_A } } });
    synth(stack);
    expect(warnings(stack).filter((w) => w.includes("host keys"))).toEqual([]);
  });

  test("the strict mode refuses unpinned nodes and bastions, naming the field", () => {
    const { stack } = strictStack(true);
    const server = new K3sServer(stack, "s", { host: { address: "203.0.113.10", ssh } });
    new K3sAgent(stack, "a", { server, host: { address: "10.0.0.11", ssh: { ...ssh, hostKey: KEY_A, bastion: { host: "203.0.113.1" } } } });
    const errors = validationErrors(stack).join("\n");
    expect(errors).toMatch(/K3sServer "cluster\/s": host\.ssh\.hostKey: required: the context "cdktf-k3s-kilo:requireHostKeys" refuses hosts whose SSH key is not pinned/);
    expect(errors).toMatch(/K3sAgent "cluster\/a": host\.ssh\.bastion\.hostKey: required/);
  });

  test("the strict mode accepts pinned hosts, tokens included", () => {
    const { stack } = strictStack("true");
    const key = new TerraformVariable(stack, "server_host_key", { type: "string" });
    new K3sServer(stack, "s", { host: { address: "203.0.113.10", ssh: { ...ssh, hostKey: key.stringValue } } });
    expect(validationErrors(stack)).toEqual([]);
    const install = resourceOf(synth(stack), "terraform_data", "s_install");
    expect(install.connection.host_key).toBe("${var.server_host_key}");
  });
});

describe("pinned keys behind a bastion", () => {
  test("both hops pinned: host_key and bastion_host_key carry one known_hosts line per hop", () => {
    const { stack } = newStack();
    new K3sServer(stack, "s", { host: { address: "10.0.0.10", ssh: { ...ssh, hostKey: KEY_A, port: 2222, bastion: { host: "203.0.113.1", hostKey: KEY_B } } } });
    expect(validationErrors(stack)).toEqual([]);
    const out = synth(stack);
    const install = resourceOf(out, "terraform_data", "s_install");
    const lines = String(install.connection.host_key).split("\n");
    expect(lines).toHaveLength(3);
    // A key type no SSH server presents, completing Terraform's "@cert-authority host:port" line.
    expect(lines[0]).toMatch(/^sk-ssh-ed25519@openssh\.com [A-Za-z0-9+/]+=*$/);
    expect(lines.slice(1)).toEqual([`[10.0.0.10]:2222 ${KEY_A}`, `[203.0.113.1]:22 ${KEY_B}`]);
    expect(install.connection.bastion_host_key).toBe(install.connection.host_key);
    // Destroy-time: the same text, built from the key-free description in state.
    const membership = resourceOf(out, "terraform_data", "s_membership");
    const destroy = provisioners(membership)[0].connection;
    expect(destroy.host_key).toBe(`${lines[0]}\n[\${self.input.host}]:\${self.input.port} \${self.input.host_key}\n[\${self.input.bastion_host}]:\${self.input.bastion_port} \${self.input.bastion_host_key}`);
    expect(membership.input.host_key).toBe(KEY_A);
    expect(membership.input.bastion_host_key).toBe(KEY_B);
  });

  test("a direct connection keeps the plain key", () => {
    const { stack } = newStack();
    new K3sServer(stack, "s", { host: { address: "203.0.113.10", ssh: { ...ssh, hostKey: KEY_A } } });
    expect(resourceOf(synth(stack), "terraform_data", "s_install").connection.host_key).toBe(KEY_A);
  });

  test("tokens work in the known_hosts text", () => {
    const { stack } = newStack();
    const port = Fn.tonumber("2222");
    const text = pinnedHopsKnownHosts("10.0.0.10", port, Fn.trimspace(KEY_A), "203.0.113.1", 22, KEY_B);
    new K3sServer(stack, "s", { host: { address: "10.0.0.10", ssh: { ...ssh, port, hostKey: Fn.trimspace(KEY_A), bastion: { host: "203.0.113.1", hostKey: KEY_B } } } });
    const hk = resourceOf(synth(stack), "terraform_data", "s_install").connection.host_key;
    expect(text).toContain("\n[10.0.0.10]:");
    expect(hk).toContain("[10.0.0.10]:${tonumber(\"2222\")} ${trimspace(");
  });

  test.each([
    ["node pinned, bastion not", { hostKey: KEY_A, bastion: { host: "203.0.113.1" } }, /host\.ssh\.bastion\.hostKey: host\.ssh\.hostKey is pinned but host\.ssh\.bastion\.hostKey is not; behind a bastion pin both hops or neither: Terraform before 1\.16\.0 and OpenTofu .*Set host\.ssh\.bastion\.hostKey too/],
    ["bastion pinned, node not", { bastion: { host: "203.0.113.1", hostKey: KEY_B } }, /host\.ssh\.hostKey: host\.ssh\.bastion\.hostKey is pinned but host\.ssh\.hostKey is not/],
  ])("one hop pinned (%s) is refused with the versions that work", (_n, extra, message) => {
    const { stack } = newStack();
    new K3sServer(stack, "s", { host: { address: "10.0.0.10", ssh: { ...ssh, ...extra } } });
    expect(validationErrors(stack).join("\n")).toMatch(message);
  });
});

describe("state in the local backend", () => {
  test("a stack with a server and the default local backend gets a note with the fix", () => {
    const { stack } = newStack();
    new K3sServer(stack, "s", { host: { address: "203.0.113.10", ssh: { ...ssh, hostKey: KEY_A } } });
    synth(stack);
    const w = warnings(stack).filter((x) => x.includes("local backend"));
    expect(w).toHaveLength(1);
    expect(w[0]).toMatch(/umask 077/);
    expect(w[0]).toMatch(/encrypted remote backend/);
  });
  test("an explicit LocalBackend gets it too; a remote backend does not", () => {
    const a = newStack();
    new LocalBackend(a.stack, { path: "x.tfstate" });
    new K3sServer(a.stack, "s", { host: { address: "203.0.113.10", ssh: { ...ssh, hostKey: KEY_A } } });
    synth(a.stack);
    expect(warnings(a.stack).some((x) => x.includes("local backend"))).toBe(true);
    const b = newStack();
    new S3Backend(b.stack, { bucket: "b", key: "k", region: "eu-west-1", encrypt: true });
    new K3sServer(b.stack, "s", { host: { address: "203.0.113.10", ssh: { ...ssh, hostKey: KEY_A } } });
    synth(b.stack);
    expect(warnings(b.stack).some((x) => x.includes("local backend"))).toBe(false);
  });
});
