/**
 * The program the kubeconfig fetch runs on the deploying machine. Here `ssh` is replaced by a
 * script on PATH that records its arguments and prints a K3s-style kubeconfig; the real client
 * against real sshd is exercised by the real-host tests.
 */
import { spawnSync } from "child_process";
import { createHash, generateKeyPairSync } from "crypto";
import { builtinModules } from "module";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import { App, TerraformStack } from "cdktf";
import { parse, stringify } from "yaml";
import { K3sServer } from "../lib";
import { rewriteKubeconfig, sshArgs } from "../lib/deploy/fetch-kubeconfig";
import { transpiledProgram } from "../lib/deploy/fetch-program";

const CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIBADAKBggqhkjOPQQDAjAjMSEwHwYDVQQDDBhrM3Mtc2VydmVyLWNh\n-----END CERTIFICATE-----\n";
const b64 = (s: string) => Buffer.from(s).toString("base64");

function k3sKubeconfig(): string {
  const key = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  return stringify({
    apiVersion: "v1", kind: "Config",
    clusters: [{ name: "default", cluster: { "certificate-authority-data": b64(CA_PEM), "server": "https://127.0.0.1:6443" } }],
    contexts: [{ name: "default", context: { cluster: "default", user: "default" } }],
    "current-context": "default",
    users: [{ name: "default", user: { "client-certificate-data": b64("CLIENT CERT"), "client-key-data": b64(key) } }],
  });
}

describe("rewriteKubeconfig", () => {
  test("points at the public API and renames by parsing, keeping the credentials", () => {
    const raw = k3sKubeconfig();
    const r = rewriteKubeconfig(raw, "https://203.0.113.10:6443", "prod");
    const doc = parse(r.kubeconfig);
    expect(doc.clusters).toEqual([{ name: "prod", cluster: { "server": "https://203.0.113.10:6443", "certificate-authority-data": b64(CA_PEM) } }]);
    expect(doc.contexts).toEqual([{ name: "prod", context: { cluster: "prod", user: "prod-admin" } }]);
    expect(doc["current-context"]).toBe("prod");
    expect(doc.users[0].name).toBe("prod-admin");
    expect(r.kubeconfig).not.toContain("127.0.0.1");
    expect(r.cluster_ca_certificate).toBe(CA_PEM);
    expect(r.client_certificate).toBe("CLIENT CERT");
    expect(r.client_key).toContain("BEGIN PRIVATE KEY");
    // K3s's join-token pin: sha256 of the CA file's bytes.
    expect(r.ca_hash).toBe(createHash("sha256").update(CA_PEM).digest("hex"));
  });

  test("an unreadable value gives the key and line only, never the text around it", () => {
    const raw = k3sKubeconfig().replace(/client-key-data: (\S+)/, "client-key-data: [$1");
    let message = "";
    try { rewriteKubeconfig(raw, "https://x:6443", "k3s"); } catch (e) { message = (e as Error).message; }
    expect(message).toMatch(/^the server's \/etc\/rancher\/k3s\/k3s\.yaml: client-key-data on line \d+ is not one base64 value$/);
    const keyData = /client-key-data: \[(\S+)/.exec(raw)![1];
    expect(message).not.toContain(keyData.slice(0, 12));
  });

  // K3s writes its kubeconfig with Go's YAML encoder (sequences not indented under their key);
  // test/harness/stand-in-k3s/k3s writes the same layout. Quoted values and CRLF are read too.
  const goLayout = (ca: string, cert: string, key: string, eol = "\n") => [
    "apiVersion: v1", "clusters:", "- cluster:", `    certificate-authority-data: ${ca}`, "    server: https://127.0.0.1:6443",
    "  name: default", "contexts:", "- context:", "    cluster: default", "    user: default", "  name: default",
    "current-context: default", "kind: Config", "preferences: {}", "users:", "- name: default", "  user:",
    `    client-certificate-data: ${cert}`, `    client-key-data: ${key}`, ""].join(eol);

  test("reads K3s's own layout, with plain, quoted and CRLF-ended values alike", () => {
    const [ca, cert, key] = [b64(CA_PEM), b64("CLIENT CERT"), b64("KEY")];
    for (const raw of [goLayout(ca, cert, key), goLayout(`"${ca}"`, `'${cert}'`, key), goLayout(ca, cert, key, "\r\n")]) {
      const r = rewriteKubeconfig(raw, "https://203.0.113.10:6443", "k3s");
      expect([r.cluster_ca_certificate, r.client_certificate, r.client_key]).toEqual([CA_PEM, "CLIENT CERT", "KEY"]);
      expect(parse(r.kubeconfig).users[0].user["client-key-data"]).toBe(key);
    }
  });

  test("refuses a kubeconfig with two clusters or two users rather than pick one", () => {
    const raw = goLayout(b64(CA_PEM), b64("C"), b64("K"));
    const twoUsers = raw + "- name: other\n  user:\n    client-certificate-data: QQ==\n    client-key-data: QQ==\n";
    expect(() => rewriteKubeconfig(twoUsers, "https://x:6443", "k3s")).toThrow(/client-certificate-data appears 2 times \(lines \d+, \d+\); K3s writes one/);
  });

  test("the kubeconfig written is YAML whose values stay themselves, whatever the API URL or cluster name (a token's value may be anything)", () => {
    const hostile = ["k3s\"\n- name: x", "a: b # c", "\u2028line\u2029sep\u0085", "tab\tnul\u0000bell\u0007", "😀 astral", "\\back'slash", "{flow: [1]}", "'", "-"];
    for (const value of hostile) {
      const r = rewriteKubeconfig(k3sKubeconfig(), value, value);
      const doc = parse(r.kubeconfig, { uniqueKeys: true });
      expect(doc.clusters).toEqual([{ name: value, cluster: { "server": value, "certificate-authority-data": b64(CA_PEM) } }]);
      expect(doc.users[0].name).toBe(`${value}-admin`);
      expect(doc["current-context"]).toBe(value);
      expect(Object.keys(doc).sort()).toEqual(["apiVersion", "clusters", "contexts", "current-context", "kind", "preferences", "users"]);
    }
  });

  test("refuses a kubeconfig without credentials", () => {
    expect(() => rewriteKubeconfig("apiVersion: v1\nclusters: []\n", "https://x:6443", "k3s")).toThrow(/has no certificate-authority-data; is K3s fully started\?/);
  });
});

describe("sshArgs", () => {
  const base = { host: "203.0.113.11", port: 2222, user: "ubuntu", api_server_url: "https://x:6443", cluster_name: "k3s" };
  test("never prompts, bounds the connection, pins the host key when given", () => {
    const args = sshArgs({ ...base, private_key_path: "/keys/id", host_key: "ssh-ed25519 AAAA" }, "/tmp/kh");
    const joined = args.join(" ");
    expect(joined).toContain("-o BatchMode=yes");
    expect(joined).toContain("-o ConnectTimeout=30");
    expect(joined).toContain("-o UserKnownHostsFile=/tmp/kh -o StrictHostKeyChecking=yes");
    expect(joined).toContain("-i /keys/id -o IdentitiesOnly=yes");
    expect(args.slice(-4)).toEqual(["-l", "ubuntu", "--", "203.0.113.11"]);
    // The user's ~/.ssh/config (ForwardAgent, ProxyCommand …) never applies.
    expect(args.slice(0, 2)).toEqual(["-F", "/dev/null"]);
    expect(joined).toContain("-o ForwardAgent=no");
    expect(joined).toContain("-p 2222");
  });
  test("bounds the connection by the host's SSH timeout", () => {
    expect(sshArgs({ ...base, timeout: "3s" }, undefined)).toContain("ConnectTimeout=3");
    expect(sshArgs({ ...base, timeout: "2m" }, undefined)).toContain("ConnectTimeout=120");
  });
  test("goes through the bastion with its own user and key", () => {
    const args = sshArgs({ ...base, bastion_host: "203.0.113.10", bastion_user: "jump", bastion_private_key_path: "/keys/jump" }, undefined);
    const proxy = args[args.indexOf("-o", args.findIndex((a) => a.startsWith("ProxyCommand")) - 1) + 1];
    expect(proxy).toMatch(/^ProxyCommand='ssh' '-F' '\/dev\/null' .*'-i' '\/keys\/jump'.*'-W' %h:%p '-l' 'jump' '--' '203\.0\.113\.10'$/);
    expect(args.join(" ")).toContain("StrictHostKeyChecking=accept-new");
  });
  const proxyOf = (args: string[]) => args[args.findIndex((a) => a.startsWith("ProxyCommand="))];
  test("pins both hops when both keys are given", () => {
    const args = sshArgs({ ...base, host_key: "k1", bastion_host: "203.0.113.10", bastion_host_key: "k2" }, "/tmp/kh");
    const outer = args.filter((a) => !a.startsWith("ProxyCommand=")).join(" ");
    expect(outer).toContain("-o UserKnownHostsFile=/tmp/kh -o StrictHostKeyChecking=yes");
    expect(outer).not.toContain("accept-new");
    expect(proxyOf(args)).toContain("'UserKnownHostsFile=/tmp/kh' '-o' 'StrictHostKeyChecking=yes'");
    expect(proxyOf(args)).not.toContain("accept-new");
  });
  test("a pinned bastion key is kept when the node's is not given, and the reverse", () => {
    const bastionOnly = sshArgs({ ...base, bastion_host: "203.0.113.10", bastion_host_key: "k2" }, "/tmp/kh");
    expect(proxyOf(bastionOnly)).toContain("'StrictHostKeyChecking=yes'");
    expect(bastionOnly.filter((a) => !a.startsWith("ProxyCommand=")).join(" ")).toContain("StrictHostKeyChecking=accept-new");
    const nodeOnly = sshArgs({ ...base, host_key: "k1", bastion_host: "203.0.113.10" }, "/tmp/kh");
    expect(proxyOf(nodeOnly)).toContain("'StrictHostKeyChecking=accept-new'");
    expect(nodeOnly.filter((a) => !a.startsWith("ProxyCommand=")).join(" ")).toContain("StrictHostKeyChecking=yes");
  });
});

describe("the fetch program", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "fetch-test-"));
    writeFileSync(join(dir, "kubeconfig"), k3sKubeconfig());
    // Stand-in ssh client: records argv, prints the kubeconfig, or fails like ssh does.
    writeFileSync(join(dir, "ssh"), `#!/bin/sh\nprintf '%s\\n' "$@" > "${dir}/argv"\nif [ -f "${dir}/fail" ]; then echo "ssh: connect to host 203.0.113.10 port 22: Connection refused" >&2; exit 255; fi\ncat "${dir}/kubeconfig"\n`);
    chmodSync(join(dir, "ssh"), 0o755);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // The compiled program, exactly what the local_command data source runs (`npm test` builds first).
  const compiled = join(__dirname, "..", "lib", "deploy", "fetch-kubeconfig.js");
  const runCompiled = (req: object) => spawnSync(process.execPath, [compiled], {
    input: JSON.stringify(req), encoding: "utf8", env: { ...process.env, PATH: `${dir}:${process.env.PATH}` },
  });

  test("prints only public parts; the secrets go to a 0600 file in a 0700 directory", () => {
    const secretsFile = join(dir, "secrets", "node.json");
    const res = runCompiled({ host: "203.0.113.10", port: 22, user: "root", host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB", api_server_url: "https://203.0.113.10:6443", cluster_name: "k3s", secrets_file: secretsFile });
    expect(res.stderr).toBe("");
    expect(res.status).toBe(0);
    const out = JSON.parse(res.stdout);
    expect(Object.keys(out).sort()).toEqual(["api_server_url", "ca_hash", "cluster_ca_certificate", "secrets_file"]);
    expect(out.secrets_file).toBe(secretsFile);
    expect(res.stdout).not.toMatch(/PRIVATE KEY|client-key-data|CLIENT CERT/);
    expect(statSync(join(dir, "secrets")).mode & 0o777).toBe(0o700);
    expect(statSync(secretsFile).mode & 0o777).toBe(0o600);
    const secrets = JSON.parse(readFileSync(secretsFile, "utf8"));
    expect(Object.keys(secrets).sort()).toEqual(["client_certificate", "client_key", "kubeconfig"]);
    expect(secrets.client_key).toContain("PRIVATE KEY");
    const argv = readFileSync(join(dir, "argv"), "utf8").split("\n");
    expect(argv).toContain("StrictHostKeyChecking=yes");
    expect(argv[argv.length - 2]).toMatch(/cat \/etc\/rancher\/k3s\/k3s\.yaml/);
  });

  test("refuses to run without an absolute secrets_file", () => {
    const res = runCompiled({ host: "203.0.113.10", port: 22, user: "root", api_server_url: "https://203.0.113.10:6443", cluster_name: "k3s", secrets_file: "rel/x.json" });
    expect(res.status).toBe(1);
    expect(res.stderr).toMatch(/secrets_file \(an absolute path\) is required/);
    expect(res.stdout).toBe("");
  });

  test("fails with the host named when ssh fails", () => {
    writeFileSync(join(dir, "fail"), "");
    const res = runCompiled({ host: "203.0.113.10", port: 22, user: "ubuntu", api_server_url: "https://203.0.113.10:6443", cluster_name: "k3s", secrets_file: join(dir, "s2", "x.json") });
    rmSync(join(dir, "fail"));
    expect(res.status).toBe(1);
    expect(res.stderr).toMatch(/fetching the kubeconfig: ssh to ubuntu@203\.0\.113\.10:22 failed \(exit 255\): .*Connection refused/);
    expect(res.stdout).toBe("");
  });

  // What Terraform runs is the stack's own copy (a TerraformAsset), so a deploy does not depend on
  // the library's install location still existing: from Python that location is a temporary folder
  // deleted when the app exits (test/python-package.test.ts checks that case itself).
  test("every synthesized stack carries the program, which runs from the stack directory alone: node's own modules only, even under an ES-module package.json", () => {
    const project = join(dir, "esm-project");
    mkdirSync(project);
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "app", type: "module" }));
    const app = new App({ outdir: join(project, "cdktf.out") });
    const stack = new TerraformStack(app, "cluster");
    new K3sServer(stack, "server", { host: { address: "203.0.113.10", ssh: { privateKeyPath: "/keys/id", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB" } } });
    app.synth();
    const stackDir = join(project, "cdktf.out", "stacks", "cluster");
    const json = JSON.parse(readFileSync(join(stackDir, "cdk.tf.json"), "utf8"));
    const fetches = Object.values(json.data.local_command) as Array<{ command: string; arguments: string[] }>;
    expect(fetches).toHaveLength(1);
    expect(fetches[0].command).toBe("node");
    const program = fetches[0].arguments[0];
    // Relative to the stack directory, where Terraform runs; .cjs, so no package.json makes it an ES module.
    expect(program).toMatch(/^assets\/server_credentials-program_[A-Za-z0-9]+\/[0-9A-F]+\/fetch-kubeconfig\.cjs$/);
    expect(existsSync(join(stackDir, program))).toBe(true);
    const required = [...readFileSync(join(stackDir, program), "utf8").matchAll(/\brequire\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1]);
    expect(required.length).toBeGreaterThan(0);
    expect(required.filter((m) => !builtinModules.includes(m))).toEqual([]);
    // Run as Terraform runs it: from the stack directory, with the request on stdin.
    const secretsFile = join(dir, "asset-secrets", "x.json");
    const stdin = { host: "203.0.113.10", port: 22, user: "root", api_server_url: "https://203.0.113.10:6443", cluster_name: "k3s", secrets_file: secretsFile };
    const res = spawnSync("node", [program], { cwd: stackDir, input: JSON.stringify(stdin), encoding: "utf8", env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } });
    expect(res.stderr).toBe("");
    expect(res.status).toBe(0);
    expect(JSON.parse(res.stdout).ca_hash).toBe(createHash("sha256").update(CA_PEM).digest("hex"));
    expect(parse(JSON.parse(readFileSync(secretsFile, "utf8")).kubeconfig).clusters[0].cluster.server).toBe("https://203.0.113.10:6443");
    // The copy is the compiled program without its source map; from the TypeScript sources (no
    // compile yet) the library transpiles the same bytes, so the asset's hash and path agree.
    const copy = readFileSync(join(stackDir, program), "utf8");
    expect(copy).toBe(readFileSync(compiled, "utf8").replace(/\n\/\/# sourceMappingURL=\S*\s*$/, "\n"));
    expect(transpiledProgram()).toBe(copy);
  });
});
