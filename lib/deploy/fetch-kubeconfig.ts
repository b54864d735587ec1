/**
 * Runs on the machine that runs `cdktf deploy`, as the program of a `local_command` data source:
 * reads the admin kubeconfig from a K3s server over SSH (the system ssh client), rewrites it for
 * use from outside, and prints JSON for Terraform. Reading it on every plan means a lost local
 * copy, or state used from another machine, gets it back.
 *
 * stdin:  FetchRequest as JSON (no secrets: a key *path* at most)
 * stdout: FetchOutput as JSON — public parts only: `local_command`'s stdout is not a sensitive
 *         attribute, and the provider logs it at TRACE
 * secrets_file: FetchSecrets as JSON, mode 0600 in a 0700 directory, which the stack reads with a
 *         `local_sensitive_file` data source (a sensitive attribute)
 *
 * K3sServer copies this program into every synthesized stack (see fetch-program.ts), where it runs
 * without the library beside it: it must require nothing but Node's own modules.
 */
import { spawnSync } from "child_process";
import { createHash } from "crypto";
import { chmodSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import { dirname, join } from "path";

export interface FetchRequest {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly private_key_path?: string;
  readonly host_key?: string;
  readonly bastion_host?: string;
  readonly bastion_port?: number;
  readonly bastion_user?: string;
  readonly bastion_private_key_path?: string;
  readonly bastion_host_key?: string;
  /** https://address:6443 as clients outside the host reach it. */
  readonly api_server_url: string;
  readonly cluster_name: string;
  /** The host's SSH timeout as Terraform writes it ("30s", "2m", "1h30m"). */
  readonly timeout?: string;
  readonly connect_timeout_seconds?: number;
  /** Where the secret parts go (absolute path; its directory is created 0700). */
  readonly secrets_file?: string;
}

/** What the program prints: nothing secret. */
export interface FetchOutput {
  readonly ca_hash: string;
  readonly api_server_url: string;
  readonly cluster_ca_certificate: string;
  readonly secrets_file: string;
}

/** What goes into secrets_file. */
export interface FetchSecrets {
  readonly kubeconfig: string;
  readonly client_certificate: string;
  readonly client_key: string;
}

export interface FetchResult {
  readonly kubeconfig: string;
  /** sha256 (hex) of the cluster CA, the hash in a secure `K10<hash>::` join token. */
  readonly ca_hash: string;
  readonly api_server_url: string;
  readonly cluster_ca_certificate: string;
  readonly client_certificate: string;
  readonly client_key: string;
}

function expandHome(p: string): string {
  return p.startsWith("~/") ? join(process.env.HOME ?? "", p.slice(2)) : p;
}

function knownHostsLine(host: string, port: number, key: string): string {
  const name = port === 22 ? host : `[${host}]:${port}`;
  return `${name} ${key.trim().split(/\s+/).slice(0, 2).join(" ")}\n`;
}

/** Seconds in a Terraform duration such as "3s", "2m" or "1h30m"; undefined when unreadable. */
export function durationSeconds(d: string | undefined): number | undefined {
  const m = d ? /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(d) : null;
  if (!m || d === "") return undefined;
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
}

function connectTimeout(r: FetchRequest): number {
  return r.connect_timeout_seconds ?? durationSeconds(r.timeout) ?? 30;
}

/** Quote one argument for the shell that runs a ProxyCommand. */
function q(s: string): string {
  return `'${s.replace(/'/g, "'\\''")}'`;
}

/**
 * The ssh client's arguments (without the remote command). `knownHostsFile` holds the pinned keys;
 * each hop whose key is pinned is checked strictly against it, and a hop without a pinned key is
 * trusted on first use (recorded in ~/.ssh/known_hosts). `-F /dev/null`: the user's ~/.ssh/config
 * (ForwardAgent, ProxyCommand, other hosts' settings) never applies; `--` ends the options.
 */
export function sshArgs(r: FetchRequest, knownHostsFile: string | undefined): string[] {
  const timeout = connectTimeout(r);
  const common = (key: string | undefined, pinned: boolean) => [
    "-F", "/dev/null",
    "-o", "BatchMode=yes",
    "-o", `ConnectTimeout=${timeout}`,
    "-o", "ServerAliveInterval=10",
    "-o", "ServerAliveCountMax=3",
    "-o", "ForwardAgent=no",
    ...(pinned && knownHostsFile
      ? ["-o", `UserKnownHostsFile=${knownHostsFile}`, "-o", "StrictHostKeyChecking=yes", "-o", "GlobalKnownHostsFile=/dev/null"]
      : ["-o", "StrictHostKeyChecking=accept-new"]),
    ...(key ? ["-i", expandHome(key), "-o", "IdentitiesOnly=yes"] : []),
  ];
  const args = [...common(r.private_key_path, !!r.host_key), "-p", String(r.port)];
  if (r.bastion_host) {
    const jump = ["ssh", ...common(r.bastion_private_key_path ?? r.private_key_path, !!r.bastion_host_key),
      "-p", String(r.bastion_port ?? 22), "-W", "%h:%p", "-l", r.bastion_user ?? r.user, "--", r.bastion_host];
    args.push("-o", `ProxyCommand=${jump.map((a) => (a === "%h:%p" ? a : q(a))).join(" ")}`);
  }
  args.push("-l", r.user, "--", r.host);
  return args;
}

const REMOTE_COMMAND = "if [ \"$(id -u)\" -eq 0 ]; then cat /etc/rancher/k3s/k3s.yaml; " +
  "else sudo -n cat /etc/rancher/k3s/k3s.yaml; fi";

/** The kubeconfig keys read from K3s's file, each a base64 value that K3s writes exactly once. */
const KUBECONFIG_KEYS = ["certificate-authority-data", "client-certificate-data", "client-key-data"] as const;
type KubeconfigKey = typeof KUBECONFIG_KEYS[number];

/**
 * The three base64 values of K3s's kubeconfig, read by key. K3s writes the file with Go's YAML
 * encoder: one cluster and one user, each value a plain scalar on its key's line. A value that is
 * not one base64 word (plain or quoted), or a key that is missing or repeated, is refused rather
 * than guessed at; messages name the key and line, never the text, which may be key material.
 */
function kubeconfigData(raw: string): Record<KubeconfigKey, string> {
  const lines = raw.split(/\r?\n/);
  const found = {} as Record<KubeconfigKey, string>;
  for (const key of KUBECONFIG_KEYS) {
    const at: number[] = [];
    let value: string | undefined;
    lines.forEach((line, i) => {
      const m = /^\s*(?:-\s+)?([A-Za-z-]+)\s*:(?:\s+(.*?))?\s*$/.exec(line);
      if (!m || m[1] !== key) return;
      at.push(i + 1);
      const v = /^(?:"([A-Za-z0-9+/=]+)"|'([A-Za-z0-9+/=]+)'|([A-Za-z0-9+/=]+))$/.exec(m[2] ?? "");
      if (!v) throw new Error(`the server's /etc/rancher/k3s/k3s.yaml: ${key} on line ${i + 1} is not one base64 value`);
      value = v[1] ?? v[2] ?? v[3];
    });
    if (at.length === 0) throw new Error(`the server's /etc/rancher/k3s/k3s.yaml has no ${key}; is K3s fully started?`);
    if (at.length > 1) throw new Error(`the server's /etc/rancher/k3s/k3s.yaml: ${key} appears ${at.length} times (lines ${at.join(", ")}); K3s writes one cluster and one user`);
    found[key] = value!;
  }
  return found;
}

/**
 * One YAML double-quoted scalar holding exactly `s`: printable ASCII as is, everything else
 * escaped (YAML's \uXXXX and \UXXXXXXXX are code points, so astral characters take the latter).
 * A token's value (the API address may be one) can be anything; it stays one scalar.
 */
export function yamlQuote(s: string): string {
  let out = "\"";
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === "\"" || ch === "\\") out += `\\${ch}`;
    else if (c >= 0x20 && c < 0x7f) out += ch;
    else if (c > 0xffff) out += `\\U${c.toString(16).padStart(8, "0")}`;
    else out += `\\u${c.toString(16).padStart(4, "0")}`;
  }
  return `${out}"`;
}

/**
 * Rewrite K3s's kubeconfig (server https://127.0.0.1:6443, names "default"): a new document with
 * one cluster, user and context, named after the cluster, pointing at the public API URL, and
 * K3s's CA and client credentials. Written by hand (every value quoted by yamlQuote), so the
 * program needs no YAML library.
 */
export function rewriteKubeconfig(raw: string, apiServerUrl: string, clusterName: string): FetchResult {
  const data = kubeconfigData(raw);
  const userName = `${clusterName}-admin`;
  const q = yamlQuote;
  const kubeconfig = [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    `- name: ${q(clusterName)}`,
    "  cluster:",
    `    server: ${q(apiServerUrl)}`,
    `    certificate-authority-data: ${q(data["certificate-authority-data"])}`,
    "users:",
    `- name: ${q(userName)}`,
    "  user:",
    `    client-certificate-data: ${q(data["client-certificate-data"])}`,
    `    client-key-data: ${q(data["client-key-data"])}`,
    "contexts:",
    `- name: ${q(clusterName)}`,
    "  context:",
    `    cluster: ${q(clusterName)}`,
    `    user: ${q(userName)}`,
    `current-context: ${q(clusterName)}`,
    "preferences: {}",
    "",
  ].join("\n");
  const bytes = (key: KubeconfigKey) => Buffer.from(data[key], "base64");
  return {
    kubeconfig,
    // K3s hashes the CA file's bytes; the kubeconfig embeds the same bytes.
    ca_hash: createHash("sha256").update(bytes("certificate-authority-data")).digest("hex"),
    api_server_url: apiServerUrl,
    cluster_ca_certificate: bytes("certificate-authority-data").toString("utf8"),
    client_certificate: bytes("client-certificate-data").toString("utf8"),
    client_key: bytes("client-key-data").toString("utf8"),
  };
}

export function fetchKubeconfig(r: FetchRequest): FetchResult {
  const dir = mkdtempSync(join(tmpdir(), "cdktf-k3s-kilo-"));
  try {
    let knownHosts: string | undefined;
    if (r.host_key || (r.bastion_host && r.bastion_host_key)) {
      knownHosts = join(dir, "known_hosts");
      let lines = "";
      if (r.host_key) lines += knownHostsLine(r.host, r.port, r.host_key);
      if (r.bastion_host && r.bastion_host_key) lines += knownHostsLine(r.bastion_host, r.bastion_port ?? 22, r.bastion_host_key);
      writeFileSync(knownHosts, lines, { mode: 0o600 });
    }
    const timeout = (connectTimeout(r) + 60) * 1000;
    const res = spawnSync("ssh", [...sshArgs(r, knownHosts), REMOTE_COMMAND], { encoding: "utf8", timeout, maxBuffer: 4 << 20 });
    const where = `${r.user}@${r.host}:${r.port}${r.bastion_host ? ` via ${r.bastion_host}` : ""}`;
    if (res.error) throw new Error(`could not run ssh to ${where}: ${res.error.message}`);
    if (res.status !== 0) {
      const why = (res.stderr || "").trim().split("\n").slice(-3).join(" / ");
      throw new Error(`ssh to ${where} failed (exit ${res.status}): ${why}`);
    }
    return rewriteKubeconfig(res.stdout, r.api_server_url, r.cluster_name);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Write the secret parts to `path` (mode 0600; its directory 0700, created if missing), replacing
 * the previous file atomically, and return what may be printed.
 */
export function writeSecrets(path: string, result: FetchResult): FetchOutput {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const secrets: FetchSecrets = { kubeconfig: result.kubeconfig, client_certificate: result.client_certificate, client_key: result.client_key };
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(secrets), { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
  return { ca_hash: result.ca_hash, api_server_url: result.api_server_url, cluster_ca_certificate: result.cluster_ca_certificate, secrets_file: path };
}

function main(): void {
  let input = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (c) => (input += c));
  process.stdin.on("end", () => {
    try {
      const request: FetchRequest = JSON.parse(input);
      if (!request.secrets_file || !request.secrets_file.startsWith("/")) throw new Error("secrets_file (an absolute path) is required");
      process.stdout.write(JSON.stringify(writeSecrets(request.secrets_file, fetchKubeconfig(request))));
    } catch (e) {
      process.stderr.write(`cdktf-k3s-kilo: fetching the kubeconfig: ${(e as Error).message}\n`);
      process.exit(1);
    }
  });
}

if (require.main === module) main();
