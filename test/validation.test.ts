/** Bad input is refused at synth with a message naming the construct, the field and the fix. */
import { Fn, TerraformVariable } from "cdktf";
import { K3sAgent, K3sServer } from "../lib";
import { newStack, validationErrors } from "./util/synth";

const ssh = { privateKeyPath: "~/.ssh/id_ed25519" };
const host = (extra: Record<string, unknown> = {}) => ({ address: "203.0.113.10", ssh, ...extra });

type Case = [string, Record<string, unknown>, RegExp];

const serverCases: Case[] = [
  ["a malformed IP", { host: host({ address: "203.0.113.300" }) }, /K3sServer "cluster\/s": host\.address: "203\.0\.113\.300" is not a valid IPv4 address/],
  ["an IPv4 shorthand", { host: host({ address: "10.1" }) }, /host\.address: "10\.1" is not a valid IP address; write IPv4 as four decimal parts/],
  ["a bad hostname", { host: host({ address: "bad_host!.example" }) }, /host\.address: "bad_host!\.example" is neither an IP address nor a DNS name/],
  ["a NAT'd host given by name", { host: host({ address: "vm.example.com", publicAddressOnInterface: false }) }, /host\.address: "vm\.example\.com" must be an IP address when publicAddressOnInterface is false/],
  ["a bad private address", { host: host({ privateAddress: "10.0.0" }) }, /host\.privateAddress: "10\.0\.0" is not an IP address/],
  ["a bad CIDR", { clusterCidr: "10.42.0.0" }, /clusterCidr: "10\.42\.0\.0" is not a CIDR block; add the prefix length/],
  ["host bits in a CIDR", { serviceCidr: "10.43.0.1/16" }, /serviceCidr: "10\.43\.0\.1\/16" has host bits set; did you mean 10\.43\.0\.0\/16\?/],
  ["a prefix too long", { clusterCidr: "10.42.0.0/33" }, /clusterCidr: "10\.42\.0\.0\/33" is not a CIDR block: the prefix length must be 0-32/],
  ["a floating version", { version: "latest" }, /version: "latest" is not a K3s release; use the form v1\.N\.P\+k3sM/],
  ["a version without the k3s suffix", { version: "v1.33.4" }, /version: "v1\.33\.4" is not a K3s release/],
  ["a bad node name", { nodeName: "Node_1" }, /nodeName: "Node_1" is not a valid node name/],
  ["a bad label key", { labels: { "-bad": "x" } }, /labels: label key "-bad" is invalid/],
  ["a label prefix with capitals", { labels: { "Example.com/role": "x" } }, /labels: label key "Example\.com\/role" has an invalid prefix/],
  ["a bad label value", { labels: { role: "a b" } }, /labels: label "role" has an invalid value "a b"/],
  ["a long label value", { labels: { role: "x".repeat(64) } }, /labels: label "role" has an invalid value/],
  ["a taint without effect", { taints: ["dedicated=gpu"] }, /taints: taint "dedicated=gpu" is invalid: use key=value:Effect/],
  ["a taint with an unknown effect", { taints: ["a=b:Never"] }, /taints: taint "a=b:Never" is invalid/],
  ["plain http for the installer", { install: { scriptUrl: "http://get.k3s.io" } }, /install\.scriptUrl: "http:\/\/get\.k3s\.io" is plain http: the script runs as root/],
  ["a bad ready timeout", { install: { readyTimeoutSeconds: 1.5 } }, /install\.readyTimeoutSeconds: 1\.5 must be a whole number of seconds between 10 and 3600/],
  ["a managed key in extraConfig", { extraConfig: { "flannel-backend": "vxlan" } }, /extraConfig\["flannel-backend"\]: this key is managed by cdktf-k3s-kilo \(must stay "none": Kilo is the CNI\)/],
  ["a token in extraConfig", { extraConfig: { token: "x" } }, /extraConfig\["token"\]: this key is managed by cdktf-k3s-kilo/],
  ["a flag with dashes", { extraConfig: { "--disable": ["traefik"] } }, /extraConfig\["--disable"\]: write the flag name without leading dashes \("disable"\)/],
  ["a bad SSH port", { host: host({ ssh: { ...ssh, port: 70000 } }) }, /host\.ssh\.port: 70000 is not a port number/],
  ["a bad SSH timeout", { host: host({ ssh: { ...ssh, timeout: "two minutes" } }) }, /host\.ssh\.timeout: "two minutes" is not a duration/],
  ["a bad host key", { host: host({ ssh: { ...ssh, hostKey: "AAAAC3Nza" } }) }, /host\.ssh\.hostKey: host key "AAAAC3Nza…" is not an OpenSSH public key line/],
  ["a relative script path", { host: host({ ssh: { ...ssh, scriptPath: "tmp/x.sh" } }) }, /host\.ssh\.scriptPath: "tmp\/x\.sh" must be an absolute path of letters, digits/],
  ["a script path with a command substitution", { host: host({ ssh: { ...ssh, scriptPath: "/tmp/$(id)_%RAND%.sh" } }) }, /host\.ssh\.scriptPath: "\/tmp\/\$\(id\)_%RAND%\.sh" must be an absolute path of letters, digits, "\.", "_", "-" and "\/" \(Terraform runs it unquoted\)/],
  ["a script path with ; and a space", { host: host({ ssh: { ...ssh, scriptPath: "/tmp/a;b c_%RAND%.sh" } }) }, /host\.ssh\.scriptPath: .* must be an absolute path of letters/],
  ["a script path with backticks", { host: host({ ssh: { ...ssh, scriptPath: "/tmp/`id`_%RAND%.sh" } }) }, /host\.ssh\.scriptPath: .* must be an absolute path of letters/],
  ["a script path without %RAND%", { host: host({ ssh: { ...ssh, scriptPath: "/var/tmp/tf.sh" } }) }, /host\.ssh\.scriptPath: "\/var\/tmp\/tf\.sh" must contain %RAND%: steps that run at the same time on one host would otherwise overwrite each other's script \(e\.g\. \/var\/tmp\/tf_%RAND%\.sh\)/],
  ["an SSH port given as a string", { host: host({ ssh: { ...ssh, port: "22" } }) }, /host\.ssh\.port: "22" is a string; give the port as a number, e\.g\. port: 22/],
  ["a bastion port given as a string", { host: host({ ssh: { ...ssh, bastion: { host: "203.0.113.1", port: "2222" } } }) }, /host\.ssh\.bastion\.port: "2222" is a string; give the port as a number, e\.g\. port: 2222/],
  ["a literal private key", { host: host({ ssh: { ...ssh, privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n" } }) }, /host\.ssh\.privateKey: a literal key would be written in clear into cdk\.tf\.json and every saved plan; pass a token instead \(e\.g\. a TerraformVariable with sensitive: true/],
  ["no credentials", { host: host({ ssh: { agent: false } }) }, /host\.ssh: no credentials: agent is false and neither privateKeyPath nor privateKey is set/],
  ["key content only", { host: host({ ssh: { privateKey: "-----BEGIN…" } }) }, /host\.ssh: privateKey \(the key's content\) reaches create-time steps only.*Also set privateKeyPath, or agent: true/],
  ["a bad bastion", { host: host({ ssh: { ...ssh, bastion: { host: "300.1.1.1" } } }) }, /host\.ssh\.bastion\.host: "300\.1\.1\.1" is not a valid IPv4 address/],
  ["a bad TLS SAN", { tlsSans: ["not a name"] }, /tlsSans: "not a name" is neither an IP address nor a DNS name/],
  ["a bad cluster name", { clusterName: "My Cluster" }, /clusterName: "My Cluster" is not a valid node name/],
  ["a bad location", { host: host({ location: "eu west" }) }, /host\.location: label "location" has an invalid value "eu west"/],
];

describe("bad input is reported at synth", () => {
  test.each(serverCases)("K3sServer with %s", (_name, props, message) => {
    const { stack } = newStack();
    new K3sServer(stack, "s", { host: host(), ...props } as any);
    const errors = validationErrors(stack);
    expect(errors.join("\n")).toMatch(message);
  });

  test("a valid server has no errors", () => {
    const { stack } = newStack();
    new K3sServer(stack, "s", { host: host({ location: "fra1", privateAddress: "10.0.0.2" }), labels: { "example.com/role": "cp" }, taints: ["a=b:NoSchedule", "c:NoExecute"], extraConfig: { disable: ["traefik"] } });
    expect(validationErrors(stack)).toEqual([]);
  });

  test("duplicate node names are refused on both nodes", () => {
    const { stack } = newStack();
    const server = new K3sServer(stack, "s", { host: host(), nodeName: "n1" });
    new K3sAgent(stack, "a", { server, host: host({ address: "203.0.113.11" }), nodeName: "n1" });
    const errors = validationErrors(stack).join("\n");
    expect(errors).toMatch(/K3sServer "cluster\/s": nodeName: "n1" is also the node name of cluster\/a; give each node its own nodeName/);
    expect(errors).toMatch(/K3sAgent "cluster\/a": nodeName: "n1" is also the node name of cluster\/s/);
  });

  test("an agent without a K3sServer, and a bad drain timeout", () => {
    const { stack } = newStack();
    const server = new K3sServer(stack, "s", { host: host() });
    new K3sAgent(stack, "a", { server, host: host({ address: "203.0.113.11" }), drainTimeoutSeconds: -1 });
    expect(validationErrors(stack).join("\n")).toMatch(/K3sAgent "cluster\/a": drainTimeoutSeconds: -1 must be a whole number of seconds between 0 and 3600/);
  });

  test("Terraform tokens pass through unvalidated", () => {
    const { stack } = newStack();
    const addr = Fn.element(Fn.split(",", "x"), 0);
    const server = new K3sServer(stack, "s", {
      host: { address: addr, privateAddress: addr, publicAddressOnInterface: false, ssh: { ...ssh, user: Fn.lower("X"), hostKey: Fn.trimspace(" k ") } },
      nodeName: Fn.lower("NODE"),
      version: Fn.trimspace(" v "),
    });
    new K3sAgent(stack, "a", { server, host: { address: Fn.element(Fn.split(",", "y"), 0), ssh } });
    expect(validationErrors(stack)).toEqual([]);
  });

  test("a private key from a sensitive variable, a token port and a plain %RAND% script path are accepted", () => {
    const { stack } = newStack();
    const key = new TerraformVariable(stack, "ssh_key", { type: "string", sensitive: true });
    new K3sServer(stack, "s", { host: host({ ssh: { ...ssh, privateKey: key.stringValue, port: Fn.tonumber("2222"), scriptPath: "/var/tmp/cdktf-k3s/terraform_%RAND%.sh" } }) });
    expect(validationErrors(stack)).toEqual([]);
  });

  test("IPv6 addresses and CIDRs are accepted", () => {
    const { stack } = newStack();
    new K3sServer(stack, "s", { host: host({ address: "2001:db8::10" }), tlsSans: ["2001:db8::1"], clusterCidr: "10.42.0.0/16" });
    expect(validationErrors(stack)).toEqual([]);
  });
});
