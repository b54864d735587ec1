/**
 * Hostile and careless input at synth (issue 21, "Accepted but dangerous"): each is refused with a
 * message that names the construct, the field and the fix, or warned about with the risk named,
 * or shown inert (a Terraform value that reaches config.yaml or a script stays one quoted value).
 * Secrets in the inputs must never be echoed back in a message.
 */
import { App, Fn, TerraformStack, TerraformVariable, Testing } from "cdktf";
import { K3sAgent, K3sServer, KiloMesh, MeshGranularity, PeerFirewall } from "../lib";
import { renderK3sConfig } from "../lib/render/k3s-config";
import { newStack, parseRenderedYaml, provisioners, resourceOf, synth } from "./util/synth";
import { CDKTF_LATE_VALUES as LATE } from "../lib/constructs/late-values";

const ssh = { privateKeyPath: "~/.ssh/id_ed25519" };
const SECRET = "hunter2";

interface Cluster { app: App; stack: TerraformStack; str: (name: string) => string; num: (name: string) => number; list: (name: string) => string[] }

function cluster(): Cluster {
  const { app, stack } = newStack();
  const str = (name: string) => new TerraformVariable(stack, name, { type: "string" }).stringValue;
  const num = (name: string) => new TerraformVariable(stack, name, { type: "number" }).numberValue;
  const list = (name: string) => new TerraformVariable(stack, name, { type: "list(string)" }).listValue;
  return { app, stack, str, num, list };
}
const server = (c: Cluster, props: Record<string, unknown> = {}) =>
  new K3sServer(c.stack, "s", { host: { address: "203.0.113.10", ssh }, ...props } as any);
const agent = (c: Cluster, s: K3sServer, props: Record<string, unknown> = {}, id = "a") =>
  new K3sAgent(c.stack, id, { server: s, host: { address: "203.0.113.11", ssh }, ...props } as any);
const mesh = (c: Cluster, s: K3sServer, props: Record<string, unknown> = {}) =>
  new KiloMesh(new TerraformStack(c.app, "mesh"), "kilo", { server: s, ...props } as any);

/** Every validation error of the app, as `cdktf synth` reports them (a throw is reported as such). */
function errorsOf(c: Cluster): string[] {
  return c.app.node.findAll().flatMap((x) => x.node.validate());
}
/** Every warning of the app after synth (aspects add theirs during synth). */
function warningsOf(c: Cluster): string[] {
  for (const st of c.app.node.findAll().filter((x): x is TerraformStack => x instanceof TerraformStack)) Testing.synth(st);
  return c.app.node.findAll().flatMap((x) => x.node.metadata).filter((m) => /warn/.test(m.type)).map((m) => String(m.data));
}
function configOf(c: Cluster, prefix: string): any {
  const out = synth(c.stack);
  return parseRenderedYaml(provisioners(resourceOf(out, "terraform_data", `${prefix}_install`)).find((p) => p.type === "file")!.content);
}
function rawConfigOf(c: Cluster, prefix: string): string {
  return provisioners(resourceOf(synth(c.stack), "terraform_data", `${prefix}_install`)).find((p) => p.type === "file")!.content;
}

type Build = (c: Cluster) => void;
type Case = [string, Build, RegExp];

/** Count of hostile inputs tried below (each table row and each single-input test adds one). */
let hostile = 0;
afterAll(() => {
  // eslint-disable-next-line no-console
  console.log(`security-inputs: ${hostile} hostile inputs tried`);
});

function refused(cases: Case[]): void {
  test.each(cases)("%s", (_name, build, message) => {
    hostile++;
    const c = cluster();
    build(c);
    const errors = errorsOf(c).join("\n");
    expect(errors).toMatch(message);
    expect(errors).not.toContain(SECRET);
    expect(errors).not.toMatch(/e\+\d{3}/);
  });
}
function warned(cases: Case[]): void {
  test.each(cases)("%s", (_name, build, message) => {
    hostile++;
    const c = cluster();
    build(c);
    expect(errorsOf(c)).toEqual([]);
    const w = warningsOf(c).join("\n");
    expect(w).toMatch(message);
    expect(w).not.toContain(SECRET);
  });
}
function accepted(cases: Array<[string, Build]>, quiet?: RegExp): void {
  test.each(cases)("%s", (_name, build) => {
    const c = cluster();
    build(c);
    expect(errorsOf(c)).toEqual([]);
    if (quiet) expect(warningsOf(c).filter((w) => quiet.test(w))).toEqual([]);
  });
}

describe("1. datastoreEndpoint: a literal password is refused in every literal part", () => {
  refused([
    ["Fn.join of a literal password and a token host", (c) => server(c, { datastoreEndpoint: Fn.join("", [`postgres://k3s:${SECRET}@`, c.str("db"), "/k3s"]) }),
      /K3sServer "cluster\/s": datastoreEndpoint: this endpoint carries a password as plain text in its literal part \("postgres:\/\/k3s:\*\*\*@\$\{…\}\/k3s"\), which would be written into the synthesized JSON \(cdk\.tf\.json\).*although other parts of it come from Terraform; pass it as a sensitive TerraformVariable's value/],
    ["a template string", (c) => server(c, { datastoreEndpoint: `postgres://k3s:${SECRET}@${c.str("db")}:5432/k3s` }), /datastoreEndpoint: this endpoint carries a password as plain text in its literal part/],
    ["a token user and a literal password", (c) => server(c, { datastoreEndpoint: `mysql://${c.str("user")}:${SECRET}@tcp(db.example.com:3306)/k3s` }), /datastoreEndpoint: this endpoint carries a password as plain text/],
    ["a password with / in it (literal)", (c) => server(c, { datastoreEndpoint: `postgres://k3s:${SECRET}/x@db.example.com:5432/k3s` }), /K3sServer "cluster\/s": datastoreEndpoint: this endpoint carries a password as plain text, which would be written into the synthesized JSON.*\(if that @ belongs to the path or query/],
    ["a password with / in it, joined to a token", (c) => server(c, { datastoreEndpoint: `postgres://k3s:${SECRET}/x@${c.str("db")}/k3s` }), /datastoreEndpoint: this endpoint carries a password as plain text in its literal part/],
    ["a password with ? and # in it", (c) => server(c, { datastoreEndpoint: `postgres://k3s:${SECRET}?#@db.example.com/k3s` }), /datastoreEndpoint: this endpoint carries a password as plain text/],
    ["password= in the query of a mix", (c) => server(c, { datastoreEndpoint: `postgres://k3s@${c.str("db")}/k3s?sslmode=verify-full&password=${SECRET}` }), /datastoreEndpoint: this endpoint carries a password as plain text in its literal part \(".*password=\*\*\*"\)/],
    ["Fn.format with a literal password argument", (c) => server(c, { datastoreEndpoint: Fn.format("postgres://%s:%s@db.example.com/k3s", [c.str("user"), SECRET]) }), /datastoreEndpoint: this endpoint carries a password as plain text/],
    ["Fn.sensitive around a joined literal password", (c) => server(c, { datastoreEndpoint: Fn.sensitive(Fn.join("", ["mysql://k3s:", SECRET, "@tcp(", c.str("db"), ")/k3s"])) }), /datastoreEndpoint: this endpoint carries a password as plain text/],
    ["a literal password half-joined to a token password", (c) => server(c, { datastoreEndpoint: `postgres://k3s:${SECRET}${c.str("pw")}@db.example.com/k3s` }), /datastoreEndpoint: this endpoint carries a password as plain text/],
    ["a mix with another scheme", (c) => server(c, { datastoreEndpoint: `redis://${c.str("db")}` }), /datastoreEndpoint: give a postgres:\/\/, mysql:\/\/ or https:\/\/ \(etcd\) endpoint/],
  ]);
  accepted([
    ["the password from a token, the rest literal", (c) => server(c, { datastoreEndpoint: `postgres://k3s:${c.str("pw")}@db.example.com/k3s?sslmode=verify-full` })],
    ["a token alone", (c) => server(c, { datastoreEndpoint: c.str("dsn") })],
    ["a user and no password", (c) => server(c, { datastoreEndpoint: "postgres://k3s@db.example.com/k3s?sslmode=verify-full" })],
    ["an @ in the query", (c) => server(c, { datastoreEndpoint: "postgres://db.example.com/k3s?sslmode=verify-full&application_name=k3s@site" })],
  ]);
});

describe("2. plaintext datastores are warned about, with the risk named", () => {
  warned([
    ["etcd over http://", (c) => server(c, { datastoreEndpoint: "http://etcd.example.com:2379" }),
      /K3sServer "cluster\/s": datastoreEndpoint: http:\/\/ reaches etcd in plaintext: the datastore holds the whole cluster state, Secrets included, and whoever can read or change traffic on the way to it can read or change the cluster\. Use https:\/\/.*If the datastore is reached over a private network you trust, this warning is expected/],
    ["postgres sslmode=disable (password from a token)", (c) => server(c, { datastoreEndpoint: `postgres://k3s:${c.str("pw")}@db.example.com/k3s?sslmode=disable` }), /datastoreEndpoint: has sslmode=disable: PostgreSQL traffic in plaintext.*sslmode=verify-full/],
    ["postgres sslmode=prefer", (c) => server(c, { datastoreEndpoint: "postgres://db.example.com/k3s?sslmode=prefer" }), /datastoreEndpoint: has sslmode=prefer, which falls back to plaintext/],
    ["postgres without sslmode", (c) => server(c, { datastoreEndpoint: `postgres://k3s:${c.str("pw")}@db.example.com:5432/k3s` }), /datastoreEndpoint: names no sslmode, so K3s's PostgreSQL driver \(pgx\) uses sslmode=prefer/],
    ["mysql without tls", (c) => server(c, { datastoreEndpoint: `mysql://k3s:${c.str("pw")}@tcp(db.example.com:3306)/k3s` }), /datastoreEndpoint: has no tls parameter, so K3s's MySQL driver talks to the server in plaintext.*tls=true/],
    ["mysql tls=preferred", (c) => server(c, { datastoreEndpoint: "mysql://tcp(db.example.com:3306)/k3s?tls=preferred" }), /datastoreEndpoint: has tls=preferred/],
    ["mysql tls=false", (c) => server(c, { datastoreEndpoint: "mysql://tcp(db.example.com:3306)/k3s?tls=false" }), /datastoreEndpoint: has tls=false, which never encrypts/],
    ["postgres sslmode=require (encrypts, checks no certificate)", (c) => server(c, { datastoreEndpoint: `postgres://k3s:${c.str("pw")}@db.example.com/k3s?sslmode=require` }),
      /K3sServer "cluster\/s": datastoreEndpoint: has sslmode=require, which encrypts but never checks the server's certificate: anyone on the way can pose as the datastore.*Add sslmode=verify-full \(with datastore-cafile/],
    ["mysql tls=skip-verify", (c) => server(c, { datastoreEndpoint: "mysql://tcp(db.example.com:3306)/k3s?tls=skip-verify" }),
      /datastoreEndpoint: has tls=skip-verify, which encrypts but never checks the server's certificate: anyone on the way can pose as the datastore.*tls=true/],
  ]);
  accepted([
    ["etcd over https://", (c) => server(c, { datastoreEndpoint: "https://etcd.example.com:2379" })],
    ["postgres sslmode=verify-full", (c) => server(c, { datastoreEndpoint: `postgres://k3s:${c.str("pw")}@db.example.com/k3s?sslmode=verify-full` })],
    ["postgres without sslmode but with datastore-cafile", (c) => server(c, { datastoreEndpoint: "postgres://db.example.com/k3s", extraConfig: { "datastore-cafile": "/etc/k3s/db-ca.pem" } })],
    ["mysql tls=true", (c) => server(c, { datastoreEndpoint: "mysql://tcp(db.example.com:3306)/k3s?tls=true" })],
    ["postgres on localhost", (c) => server(c, { datastoreEndpoint: "postgres://localhost:5432/k3s?sslmode=disable" })],
    ["mysql over a unix socket", (c) => server(c, { datastoreEndpoint: "mysql://unix(/run/mysqld/mysqld.sock)/k3s" })],
    ["postgres whose query comes from a token", (c) => server(c, { datastoreEndpoint: `postgres://db.example.com/k3s?${c.str("params")}` })],
  ], /datastoreEndpoint/);
});

describe("3. install.scriptUrl: no credentials, no plain http, in literal parts too", () => {
  refused([
    ["a literal user:token", (c) => server(c, { install: { scriptUrl: `https://deploy:${SECRET}@mirror.example.com/k3s/install.sh` } }),
      /K3sServer "cluster\/s": install\.scriptUrl: "https:\/\/deploy:\*\*\*@mirror\.example\.com\/k3s\/install\.sh" carries credentials \(user:password before the @\): they would be written into cdk\.tf\.json and every saved plan, into the script Terraform uploads to every host \(world-readable while it runs\).*Serve the script from a URL that needs no credentials/],
    ["a literal user and a token password", (c) => server(c, { install: { scriptUrl: `https://deploy:${c.str("tok")}@mirror.example.com/install.sh` } }), /install\.scriptUrl: "https:\/\/deploy:\*\*\*@mirror\.example\.com\/install\.sh" carries credentials/],
    ["Fn.join with literal credentials", (c) => agent(c, server(c), { install: { scriptUrl: Fn.join("", [`https://u:${SECRET}@`, c.str("mirror"), "/install.sh"]) } }), /K3sAgent "cluster\/a": install\.scriptUrl: .* carries credentials/],
    // The credentials are in the argument only: the format string has no "@" of its own.
    ["Fn.format with literal credentials", (c) => server(c, { install: { scriptUrl: Fn.format("%s/%s", [`https://deploy:${SECRET}@mirror.example.com`, c.str("path")]) } }), /K3sServer "cluster\/s": install\.scriptUrl: .* carries credentials \(user:password before the @\)/],
    ["a token in place of the whole userinfo", (c) => server(c, { install: { scriptUrl: `https://${c.str("creds")}@mirror.example.com/install.sh` } }), /install\.scriptUrl: "https:\/\/\*\*\*@mirror\.example\.com\/install\.sh" carries credentials \(a user name or token before the @\)/],
    ["a bare token user", (c) => server(c, { install: { scriptUrl: `https://${SECRET}@mirror.example.com/install.sh` } }), /install\.scriptUrl: .* carries credentials.*written %40/],
    ["plain http around a token", (c) => server(c, { install: { scriptUrl: `http://${c.str("mirror")}/install.sh` } }), /install\.scriptUrl: "http:\/\/\$\{…\}\/install\.sh" is plain http: the script runs as root/],
    ["ftp:// around a token", (c) => server(c, { install: { scriptUrl: `ftp://${c.str("mirror")}/install.sh` } }), /install\.scriptUrl: "ftp:\/\/\$\{…\}\/install\.sh" is not an https:\/\/ or file:\/\/ URL/],
  ]);
  accepted([
    ["https around a token host", (c) => server(c, { install: { scriptUrl: `https://${c.str("mirror")}/install.sh`, scriptSha256: "a".repeat(64) } })],
    ["a token alone", (c) => server(c, { install: { scriptUrl: c.str("url"), scriptSha256: "a".repeat(64) } })],
  ]);
});

describe("4. nodePortAddresses that publish NodePorts", () => {
  const ipv6 = { clusterCidr: "fd42:42::/56", serviceCidr: "fd42:43::/112" };
  warned([
    ["a range that covers the node's public address", (c) => server(c, { nodePortAddresses: ["10.4.0.0/16", "203.0.113.0/24"] }),
      /K3sServer "cluster\/s": nodePortAddresses\[1\]: "203\.0\.113\.0\/24" covers this node's public address 203\.0\.113\.10, so NodePort Services answer there to the whole Internet, past ufw\. nodePortAddresses chooses which of the node's own addresses serve NodePorts, not who may connect/],
    ["a range that covers the node's private address", (c) => agent(c, server(c), { host: { address: "203.0.113.11", privateAddress: "10.0.0.5", ssh }, nodePortAddresses: ["10.0.0.0/8"] }),
      /K3sAgent "cluster\/a": nodePortAddresses\[0\]: "10\.0\.0\.0\/8" covers this node's private address 10\.0\.0\.5, so NodePort Services answer there to every machine on that private network, past ufw/],
    ["the default range holding the private address of a node whose mesh uses another subnet", (c) => {
      const s = server(c, { host: { address: "203.0.113.10", privateAddress: "10.4.0.7", ssh } });
      mesh(c, s, { wireguardSubnet: "10.8.0.0/16" });
    }, /nodePortAddresses\[0\]: "10\.4\.0\.0\/16" covers this node's private address 10\.4\.0\.7.*give the mesh's WireGuard subnet/],
    ["::/0 in an IPv6 cluster", (c) => server(c, { ...ipv6, nodePortAddresses: ["fd42:4::/64", "::/0"] }), /nodePortAddresses: "::\/0" serves NodePort Services on every address of cluster\/s, public ones included/],
    ["a one-address range on the public IPv6 address", (c) => new K3sServer(c.stack, "s", { host: { address: "2001:db8::10", ssh }, ...ipv6, nodePortAddresses: ["fd42:4::/64", "2001:db8::10/128"] }), /nodePortAddresses\[1\]: "2001:db8::10\/128" covers this node's public address 2001:db8::10/],
  ]);
  refused([
    ["an IPv6-only cluster left with the IPv4-only default", (c) => server(c, { clusterCidr: "fd42:42::/56", serviceCidr: "fd42:43::/112" }),
      /K3sServer "cluster\/s": nodePortAddresses: the cluster's pod network fd42:42::\/56 is IPv6, but nodePortAddresses \(10\.4\.0\.0\/16, the default\) has no IPv6 range, and kube-proxy serves NodePorts on every address of a family it has no range for.*public ones included, past ufw\. Add the IPv6 range/],
    ["an agent of an IPv6-only cluster", (c) => agent(c, server(c, { clusterCidr: "fd42:42::/56", serviceCidr: "fd42:43::/112", nodePortAddresses: ["fd42:4::/64"] })),
      /K3sAgent "cluster\/a": nodePortAddresses: the cluster's pod network fd42:42::\/56 is IPv6, but nodePortAddresses \(10\.4\.0\.0\/16, the default\) has no IPv6 range/],
    ["an IPv4 cluster given IPv6 ranges only", (c) => server(c, { nodePortAddresses: ["fd00:4::/64"] }), /nodePortAddresses: the cluster's pod network 10\.42\.0\.0\/16 is IPv4, but nodePortAddresses \(fd00:4::\/64\) has no IPv4 range/],
  ]);
  accepted([
    ["the default", (c) => agent(c, server(c, { host: { address: "203.0.113.10", privateAddress: "10.0.0.4", ssh } }))],
    ["an IPv6-only cluster with an IPv6 range", (c) => server(c, { ...ipv6, nodePortAddresses: ["fd42:4::/64"] })],
    ["::/0 in an IPv4 cluster (it has no IPv6 Services)", (c) => server(c, { nodePortAddresses: ["10.4.0.0/16", "::/0"] })],
  ], /nodePortAddresses/);
});

describe("5. a node address inside the Kilo subnet", () => {
  refused([
    ["privateAddress inside Kilo's default subnet", (c) => server(c, { host: { address: "203.0.113.10", privateAddress: "10.4.0.7", ssh } }),
      /K3sServer "cluster\/s": host\.privateAddress: 10\.4\.0\.7 is inside the Kilo WireGuard subnet 10\.4\.0\.0\/16 \(Kilo's default\): Kilo gives the nodes' kilo0 interfaces addresses from it.*Give the mesh another subnet/],
    ["privateAddress inside KiloMesh's wireguardSubnet", (c) => {
      const s = server(c, { host: { address: "203.0.113.10", privateAddress: "10.8.1.1", ssh } });
      mesh(c, s, { wireguardSubnet: "10.8.0.0/16" });
    }, /K3sServer "cluster\/s": host\.privateAddress: 10\.8\.1\.1 is inside the Kilo WireGuard subnet 10\.8\.0\.0\/16 \(KiloMesh mesh\/kilo's wireguardSubnet\)/],
    ["privateAddress inside PeerFirewall's kiloSubnet", (c) => {
      const s = server(c);
      const a = agent(c, s, { host: { address: "203.0.113.11", privateAddress: "10.9.0.3", ssh } });
      new PeerFirewall(c.stack, "fw", { nodes: [s, a], adminCidrs: ["198.51.100.0/24"], kiloSubnet: "10.9.0.0/16" });
    }, /K3sAgent "cluster\/a": host\.privateAddress: 10\.9\.0\.3 is inside the Kilo WireGuard subnet 10\.9\.0\.0\/16 \(PeerFirewall cluster\/fw's kiloSubnet\)/],
    ["a public address inside the Kilo subnet", (c) => agent(c, server(c), { host: { address: "10.4.3.3", ssh } }), /K3sAgent "cluster\/a": host\.address: 10\.4\.3\.3 is inside the Kilo WireGuard subnet 10\.4\.0\.0\/16/],
  ]);
  accepted([
    ["privateAddress outside a mesh's own subnet", (c) => {
      const s = server(c, { host: { address: "203.0.113.10", privateAddress: "10.4.0.7", ssh }, nodePortAddresses: ["10.8.0.0/16"] });
      new PeerFirewall(c.stack, "fw", { nodes: [s], adminCidrs: ["198.51.100.0/24"], kiloSubnet: "10.8.0.0/16" });
      mesh(c, s, { wireguardSubnet: "10.8.0.0/16" });
    }],
  ]);
});

describe("6. K3s's key+ and arg+= / arg-= forms cannot get past the NodePort guard", () => {
  refused([
    ["kube-proxy-arg+ (the append key)", (c) => server(c, { extraConfig: { "kube-proxy-arg+": ["nodeport-addresses=0.0.0.0/0"] } }),
      /K3sServer "cluster\/s": extraConfig\["kube-proxy-arg\+"\]: "nodeport-addresses=0\.0\.0\.0\/0": use the nodePortAddresses prop/],
    ["kube-proxy-arg+ beside a harmless kube-proxy-arg", (c) => server(c, { extraConfig: { "kube-proxy-arg": ["metrics-bind-address=127.0.0.1:10249"], "kube-proxy-arg+": "nodeport-addresses=::/0" } }),
      /extraConfig\["kube-proxy-arg\+"\]: "nodeport-addresses=::\/0": use the nodePortAddresses prop/],
    ["nodeport-addresses+= (K3s appends to our value)", (c) => server(c, { extraConfig: { "kube-proxy-arg": ["nodeport-addresses+=0.0.0.0/0"] } }), /extraConfig\["kube-proxy-arg"\]: "nodeport-addresses\+=0\.0\.0\.0\/0": use the nodePortAddresses prop/],
    ["--nodeport-addresses-= (K3s prepends)", (c) => agent(c, server(c), { extraConfig: { "kube-proxy-arg": ["--nodeport-addresses-=0.0.0.0/0"] } }), /K3sAgent "cluster\/a": extraConfig\["kube-proxy-arg"\]: "--nodeport-addresses-=0\.0\.0\.0\/0": use the nodePortAddresses prop/],
    ["nodeport-addresses with a value from a token", (c) => server(c, { extraConfig: { "kube-proxy-arg": [`nodeport-addresses=${c.str("np")}`] } }), /extraConfig\["kube-proxy-arg"\]: "nodeport-addresses=\$\{…\}": use the nodePortAddresses prop/],
    ["a kube-proxy config file", (c) => server(c, { extraConfig: { "kube-proxy-arg+": ["config=/etc/kube-proxy.yaml"] } }), /extraConfig\["kube-proxy-arg\+"\]: "config=\/etc\/kube-proxy\.yaml": kube-proxy would take its whole configuration from that file and ignore the flags K3s passes, nodeport-addresses included/],
    ["a key from a Terraform value", (c) => server(c, { extraConfig: { [c.str("key")]: "0644" } }), /K3sServer "cluster\/s": extraConfig: a key from a Terraform value .* could name any setting, the managed ones included; write K3s flag names literally/],
    ["a key that is no flag name (YAML injection)", (c) => server(c, { extraConfig: { "node-ip\nwrite-kubeconfig-mode": "0644" } }), /extraConfig\["node-ip\\nwrite-kubeconfig-mode"\]: not a K3s flag name/],
    ["a managed key written with upper case", (c) => server(c, { extraConfig: { "Token": "x" } }), /extraConfig\["Token"\]: not a K3s flag name/],
  ]);
  accepted([
    ["other kube-proxy args, both keys", (c) => server(c, { extraConfig: { "kube-proxy-arg": ["metrics-bind-address=127.0.0.1:10249"], "kube-proxy-arg+": ["conntrack-max-per-core=0"] } })],
  ]);
});

describe("7. Terraform values inside extraConfig stay inside jsonencode()", () => {
  refused([
    ["an object value holding a token", (c) => server(c, { extraConfig: { "kubelet-arg": { nested: c.str("x") } } }),
      /K3sServer "cluster\/s": extraConfig\["kubelet-arg"\]: an object; K3s config values are a string, a number, a boolean or a list of those/],
    ["a list holding an object", (c) => server(c, { extraConfig: { "kubelet-arg": [{ a: c.str("x") }] } }), /extraConfig\["kubelet-arg"\]\[0\]: an object; K3s config values are a string, a number, a boolean or a list of those/],
  ]);

  test("a string token, a number token, a list token and a token in a list all reach config.yaml through jsonencode()", () => {
    hostile += 4;
    const c = cluster();
    server(c, { extraConfig: { "kubelet-arg": [`max-pods=${c.str("pods")}`], "https-listen-port": c.num("port"), "disable": c.list("disabled"), "kubelet-arg+": [c.str("label")] } });
    expect(errorsOf(c)).toEqual([]);
    const raw = rawConfigOf(c, "s");
    expect(raw).toContain('\nkubelet-arg:\n  - ${jsonencode("max-pods=${var.pods}")}\n');
    expect(raw).toContain('\nhttps-listen-port: ${jsonencode(var.port)}\n');
    expect(raw).toContain('\nkubelet-arg+:\n  - ${jsonencode(var.label)}\n');
    expect(raw).not.toMatch(/e\+\d{3}/);
    // The user's list token is merged into ours through Terraform (concat), each element encoded.
    expect(raw).toContain('\ndisable: ${jsonencode(concat(["servicelb"], var.disabled))}\n');
  });

  test("nodePortAddresses from a list variable is joined by Terraform, inside jsonencode()", () => {
    hostile++;
    const c = cluster();
    server(c, { nodePortAddresses: c.list("np") });
    expect(errorsOf(c)).toEqual([]);
    expect(rawConfigOf(c, "s")).toContain('\nkube-proxy-arg:\n  - ${jsonencode("nodeport-addresses=${join(",", var.np)}")}\n');
  });

  test("the renderer itself encodes tokens nested in objects (defence in depth)", () => {
    hostile++;
    const c = cluster();
    const token = c.str("evil");
    const yaml = renderK3sConfig({ "x": { nested: [token] } } as any, LATE, (v) => `ENC(${JSON.stringify(v)})`);
    expect(yaml).toContain(`ENC(${JSON.stringify(token)})`);
    expect(yaml).not.toMatch(/- "\$\{TfToken/);
  });

  test("the install trigger follows a number token's value (it is digested by Terraform, not as a constant)", () => {
    const c = cluster();
    server(c, { extraConfig: { "https-listen-port": c.num("port") } });
    const trigger = resourceOf(synth(c.stack), "terraform_data", "s_install").triggers_replace;
    expect(JSON.stringify(trigger)).toContain("var.port");
  });
});

describe("8. kg flags Kilo itself calls insecure, or that break the mesh this construct sets up", () => {
  const withArgs = (args: string[], props: Record<string, unknown> = {}): Build => (c) => { mesh(c, server(c), { extraArgs: args, ...props }); };
  refused([
    ["--iptables-forward-rules=true", withArgs(["--iptables-forward-rules=true"]),
      /KiloMesh "mesh\/kilo": extraArgs: "--iptables-forward-rules=true": Kilo's own help calls it "potentially insecure": it puts ACCEPT rules for the pod networks at the top of the FORWARD chain, matched by address on any interface, ahead of ufw's rules.*PeerFirewall already allows the forwarding the mesh needs, bound to kilo0 and kube-bridge; remove the flag/],
    ["--iptables-forward-rules (bare, means true)", withArgs(["--iptables-forward-rules"]), /extraArgs: "--iptables-forward-rules": Kilo's own help calls it "potentially insecure"/],
    ["--iptables-forward-rules=T", withArgs(["--iptables-forward-rules=T"]), /extraArgs: "--iptables-forward-rules=T": Kilo's own help calls it "potentially insecure"/],
    ["--cni-path", withArgs(["--cni-path=/tmp/10-kilo.conflist"]), /extraArgs: "--cni-path=\/tmp\/10-kilo\.conflist": .*\/etc\/cni\/net\.d\/10-kilo\.conflist/],
    ["--cni=false", withArgs(["--cni=false"]), /extraArgs: "--cni=false": KiloMesh deploys Kilo as the CNI/],
    ["--compatibility=flannel", withArgs(["--compatibility=flannel"]), /extraArgs: "--compatibility=flannel": .*flannel is off/],
    ["--topology-label with LOCATION granularity", withArgs(["--topology-label=kubernetes.io/os"], { meshGranularity: MeshGranularity.LOCATION, nodes: undefined }),
      /extraArgs: "--topology-label=kubernetes\.io\/os": with MeshGranularity\.LOCATION .* not encrypted/],
    ["--version", withArgs(["--version"]), /extraArgs: "--version": kg would print its version and exit/],
  ]);

  test("--iptables-forward-rules with a value from a token", () => {
    hostile++;
    const c = cluster();
    mesh(c, server(c), { extraArgs: [`--iptables-forward-rules=${c.str("fwd")}`] });
    expect(errorsOf(c).join("\n")).toMatch(/extraArgs: "--iptables-forward-rules=\$\{…\}": Kilo's own help calls it "potentially insecure"/);
  });

  accepted([
    ["--iptables-forward-rules=false", withArgs(["--iptables-forward-rules=false"])],
    ["--topology-label with FULL granularity (Kilo ignores locations)", withArgs(["--topology-label=kubernetes.io/os"])],
    ["--log-level and --resync-period", withArgs(["--log-level=debug", "--resync-period=1m"])],
  ]);
});

describe("documented opt-ins that open Services or turn protections off: one warning per field and stack", () => {
  warned([
    ["nodePortAddresses 0.0.0.0/0", (c) => server(c, { nodePortAddresses: ["0.0.0.0/0"] }),
      /nodePortAddresses: "0\.0\.0\.0\/0" serves NodePort Services on every address of cluster\/s, public ones included: kube-proxy accepts that traffic ahead of ufw, so PeerFirewall does not filter it/],
    ["serviceLoadBalancer: true", (c) => server(c, { serviceLoadBalancer: true }),
      /serviceLoadBalancer: true on cluster\/s: ServiceLB serves every LoadBalancer Service \(Traefik's 80\/443 included\) on the nodes' own addresses, and kube-proxy accepts that traffic ahead of ufw: those ports are open to the Internet whatever PeerFirewall says/],
    ["networkPolicy: false", (c) => server(c, { networkPolicy: false }), /networkPolicy: false on cluster\/s: NetworkPolicy objects are not enforced: every pod can reach every other pod/],
    ["secretsEncryption: false", (c) => server(c, { secretsEncryption: false }), /secretsEncryption: false on cluster\/s: Secrets are stored unencrypted in the datastore/],
    ["a mirror installer without a sha256", (c) => agent(c, server(c), { install: { scriptUrl: "https://mirror.example.com/k3s/install.sh" } }),
      /install\.scriptUrl without install\.scriptSha256 on cluster\/a: the install script runs as root on the host, and whoever controls https:\/\/mirror\.example\.com\/k3s\/install\.sh \(or the mirror's TLS\) controls the node; pin it with install\.scriptSha256/],
  ]);

  test("once per stack, naming every node", () => {
    hostile += 2;
    const c = cluster();
    const s = server(c, { nodePortAddresses: ["0.0.0.0/0"] });
    agent(c, s, { nodePortAddresses: ["0.0.0.0/0"] });
    agent(c, s, {}, "b");
    const w = warningsOf(c).filter((x) => x.includes("serves NodePort Services on every address"));
    expect(w).toHaveLength(1);
    expect(w[0]).toContain("cluster/s, cluster/a");
    expect(w[0]).not.toContain("cluster/b");
  });

  accepted([
    ["the defaults", (c) => agent(c, server(c))],
    ["a pinned mirror", (c) => server(c, { install: { scriptUrl: "https://mirror.example.com/k3s/install.sh", scriptSha256: "a".repeat(64) } })],
  ], /nodePortAddresses|serviceLoadBalancer|networkPolicy|secretsEncryption|scriptUrl/);
});

describe("the unclear errors, made clear", () => {
  refused([
    ["rollout.maxUnavailable from a number variable", (c) => server(c, { rollout: { maxUnavailable: c.num("mu") } }),
      /K3sServer "cluster\/s": rollout\.maxUnavailable: a Terraform value \(a variable or another resource's attribute\) cannot be used here: .* give a number, such as 2/],
    ["rollout.slotTimeoutSeconds from a number variable", (c) => server(c, { rollout: { slotTimeoutSeconds: c.num("st") } }), /rollout\.slotTimeoutSeconds: a Terraform value .* give a number, such as 3600/],
    ["rollout.maxUnavailablePercent from a number variable", (c) => server(c, { rollout: { maxUnavailablePercent: c.num("mp") } }), /rollout\.maxUnavailablePercent: a Terraform value .* give a number, such as 25/],
    ["drainTimeoutSeconds from a number variable", (c) => agent(c, server(c), { drainTimeoutSeconds: c.num("dt") }), /K3sAgent "cluster\/a": drainTimeoutSeconds: a Terraform value .* give a number, such as 120/],
    ["install.readyTimeoutSeconds from a number variable", (c) => server(c, { install: { readyTimeoutSeconds: c.num("rt") } }), /install\.readyTimeoutSeconds: a Terraform value .* give a number, such as 300/],
    ["kubeconfigPath \"\"", (c) => server(c, { kubeconfigPath: "" }), /K3sServer "cluster\/s": kubeconfigPath: is empty; give the file to write the admin kubeconfig to, such as "~\/\.kube\/k3s\.yaml", or leave kubeconfigPath out/],
  ]);

  test("a wireguardSubnet equal to the pod network is blamed on wireguardSubnet alone", () => {
    hostile++;
    const c = cluster();
    const s = server(c);
    new PeerFirewall(c.stack, "fw", { server: s, adminCidrs: ["198.51.100.0/24"] });
    mesh(c, s, { wireguardSubnet: "10.42.0.0/16" });
    const errors = errorsOf(c);
    expect(errors.join("\n")).toMatch(/KiloMesh "mesh\/kilo": wireguardSubnet: 10\.42\.0\.0\/16 overlaps the pod network \(server clusterCidr\) 10\.42\.0\.0\/16; pick a separate range/);
    expect(errors.filter((e) => e.includes("kiloSubnet"))).toEqual([]);
  });

  test("a firewall left at the default kiloSubnet beside a mesh on another subnet is told to set it", () => {
    hostile++;
    const c = cluster();
    const s = server(c, { nodePortAddresses: ["10.8.0.0/16"] });
    new PeerFirewall(c.stack, "fw", { server: s, adminCidrs: ["198.51.100.0/24"] });
    mesh(c, s, { wireguardSubnet: "10.8.0.0/16" });
    expect(errorsOf(c).join("\n")).toMatch(/PeerFirewall "cluster\/fw": kiloSubnet: not set, so Kilo's default 10\.4\.0\.0\/16, but KiloMesh mesh\/kilo's wireguardSubnet is 10\.8\.0\.0\/16; set kiloSubnet: "10\.8\.0\.0\/16"/);
  });
});
