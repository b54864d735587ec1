/**
 * Turning a Host into what Terraform needs: the create-time `connection` block, and the
 * key-free connection description that destroy-time steps and the kubeconfig fetch read back
 * from state.
 */
import { Fn, SSHProvisionerConnection, Token } from "cdktf";
import { Host } from "../host/host";

/** Terraform's connection default is 5m; two minutes is plenty for a host that is up. */
export const DEFAULT_SSH_TIMEOUT = "2m";

/** One token per key path: the same text in every connection, and no new token per node at synth. */
const keyFiles = new Map<string, string>();
function keyFile(path: string): string {
  let token = keyFiles.get(path);
  if (token === undefined) keyFiles.set(path, token = Fn.file(Fn.pathexpand(path)));
  return token;
}

/** Whether the SSH agent is used (explicitly, or because no key was given). */
export function usesAgent(host: Host): boolean {
  return host.ssh.agent ?? (host.ssh.privateKeyPath === undefined && host.ssh.privateKey === undefined);
}

export function sshHost(host: Host): string {
  return host.ssh.host ?? host.address;
}

/**
 * A public key no SSH server can present as its host key (a FIDO security-key type with an all-zero
 * key), used as the first line of the known_hosts text below. Built at run time; it is not a secret.
 */
function placeholderKey(): string {
  const str = (b: Buffer) => { const l = Buffer.alloc(4); l.writeUInt32BE(b.length); return Buffer.concat([l, b]); };
  const blob = Buffer.concat([str(Buffer.from("sk-ssh-ed25519@openssh.com")), str(Buffer.alloc(32)), str(Buffer.from("ssh:"))]);
  return `sk-ssh-ed25519@openssh.com ${blob.toString("base64")}`;
}

function portText(port: string | number): string {
  return typeof port === "number" ? (Token.isUnresolved(port) ? Token.asString(port) : String(port)) : port;
}

/**
 * The `host_key` (and `bastion_host_key`) of a connection through a pinned bastion.
 *
 * Terraform before 1.16.0 (hashicorp/terraform#38318) and OpenTofu (through 1.12) check the bastion
 * against `host_key`, not `bastion_host_key`, so one pinned key cannot match both hops. Every
 * version writes the value into a temporary known_hosts file as `@cert-authority <host>:<port>
 * <value>` and matches by address, so this value is a small known_hosts text: a first key of a
 * type no server offers (it completes Terraform's line), then one line per hop, `[host]:port key`.
 * Each hop then finds exactly its own key, on old and fixed versions alike (communicator/ssh
 * provisioner.go buildSSHClientConfig; golang.org/x/crypto ssh/knownhosts checkAddr).
 */
export function pinnedHopsKnownHosts(
  host: string, port: string | number, hostKey: string,
  bastionHost: string, bastionPort: string | number, bastionHostKey: string,
): string {
  return [
    placeholderKey(),
    `[${host}]:${portText(port)} ${hostKey}`,
    `[${bastionHost}]:${portText(bastionPort)} ${bastionHostKey}`,
  ].join("\n");
}

/**
 * The connection block for create-time provisioners. Terraform never stores connection blocks
 * in state, so key content is allowed here.
 */
export function createTimeConnection(host: Host): SSHProvisionerConnection {
  const s = host.ssh;
  const b = s.bastion;
  const bastionKey = b?.privateKeyPath ?? s.privateKeyPath;
  // Both hops pinned (validation refuses one without the other): see pinnedHopsKnownHosts.
  const hops = b && s.hostKey !== undefined && b.hostKey !== undefined
    ? pinnedHopsKnownHosts(sshHost(host), s.port ?? 22, s.hostKey, b.host, b.port ?? 22, b.hostKey)
    : undefined;
  return {
    type: "ssh",
    host: sshHost(host),
    user: s.user ?? "root",
    port: s.port ?? 22,
    timeout: s.timeout ?? DEFAULT_SSH_TIMEOUT,
    privateKey: s.privateKey ?? (s.privateKeyPath !== undefined ? keyFile(s.privateKeyPath) : undefined),
    agent: usesAgent(host) ? "true" : "false",
    hostKey: hops ?? s.hostKey,
    scriptPath: s.scriptPath,
    bastionHost: b?.host,
    bastionPort: b ? b.port ?? 22 : undefined,
    bastionUser: b ? b.user ?? s.user ?? "root" : undefined,
    bastionPrivateKey: b ? (bastionKey !== undefined ? keyFile(bastionKey) : s.privateKey) : undefined,
    bastionHostKey: hops ?? b?.hostKey,
  };
}

/**
 * A description of the SSH connection without any key material, safe to keep in state: what
 * destroy-time provisioners (which may only read `self`) and the kubeconfig fetch use.
 * Keys are snake_case because Terraform reads them back as `self.input.<prefix>host` etc.
 */
export function connectionDescription(host: Host, prefix = ""): Record<string, string | number> {
  const s = host.ssh;
  const b = s.bastion;
  const d: Record<string, string | number> = {
    [`${prefix}host`]: sshHost(host),
    [`${prefix}user`]: s.user ?? "root",
    [`${prefix}port`]: s.port ?? 22,
    [`${prefix}timeout`]: s.timeout ?? DEFAULT_SSH_TIMEOUT,
  };
  if (s.privateKeyPath !== undefined) d[`${prefix}private_key_path`] = s.privateKeyPath;
  if (s.hostKey !== undefined) d[`${prefix}host_key`] = s.hostKey;
  if (s.scriptPath !== undefined) d[`${prefix}script_path`] = s.scriptPath;
  if (b) {
    d[`${prefix}bastion_host`] = b.host;
    d[`${prefix}bastion_port`] = b.port ?? 22;
    d[`${prefix}bastion_user`] = b.user ?? s.user ?? "root";
    const bk = b.privateKeyPath ?? s.privateKeyPath;
    if (bk !== undefined) d[`${prefix}bastion_private_key_path`] = bk;
    if (b.hostKey !== undefined) d[`${prefix}bastion_host_key`] = b.hostKey;
  }
  return d;
}

/**
 * The connection block of a destroy-time provisioner, reading everything from `self.input`
 * (written by connectionDescription with the same prefix). Keys come from a path or the agent.
 */
export function destroyTimeConnection(host: Host, prefix = ""): Record<string, unknown> {
  const d = connectionDescription(host, prefix);
  const ref = (k: string) => `\${self.input.${prefix}${k}}`;
  const c: Record<string, unknown> = {
    type: "ssh",
    host: ref("host"),
    user: ref("user"),
    port: ref("port"),
    timeout: ref("timeout"),
  };
  if (`${prefix}private_key_path` in d) {
    c.private_key = `\${file(pathexpand(self.input.${prefix}private_key_path))}`;
    c.agent = false;
  } else {
    c.agent = true;
  }
  const bothPinned = `${prefix}host_key` in d && `${prefix}bastion_host_key` in d;
  const hops = bothPinned
    ? pinnedHopsKnownHosts(ref("host"), ref("port"), ref("host_key"), ref("bastion_host"), ref("bastion_port"), ref("bastion_host_key"))
    : undefined;
  if (`${prefix}host_key` in d) c.host_key = hops ?? ref("host_key");
  if (`${prefix}script_path` in d) c.script_path = ref("script_path");
  if (`${prefix}bastion_host` in d) {
    c.bastion_host = ref("bastion_host");
    c.bastion_port = ref("bastion_port");
    c.bastion_user = ref("bastion_user");
    if (`${prefix}bastion_private_key_path` in d) {
      c.bastion_private_key = `\${file(pathexpand(self.input.${prefix}bastion_private_key_path))}`;
    }
    if (`${prefix}bastion_host_key` in d) c.bastion_host_key = hops ?? ref("bastion_host_key");
  }
  return c;
}
