/**
 * Turning a Host into what Terraform needs: the create-time `connection` block, and the
 * key-free connection description that destroy-time steps and the kubeconfig fetch read back
 * from state.
 */
import { Fn, SSHProvisionerConnection } from "cdktf";
import { Host } from "./host";

/** Terraform's connection default is 5m; two minutes is plenty for a host that is up. */
export const DEFAULT_SSH_TIMEOUT = "2m";

function keyFile(path: string): string {
  return Fn.file(Fn.pathexpand(path));
}

/** Whether the SSH agent is used (explicitly, or because no key was given). */
export function usesAgent(host: Host): boolean {
  return host.ssh.agent ?? (host.ssh.privateKeyPath === undefined && host.ssh.privateKey === undefined);
}

export function sshHost(host: Host): string {
  return host.ssh.host ?? host.address;
}

/**
 * The connection block for create-time provisioners. Terraform never stores connection blocks
 * in state, so key content is allowed here.
 */
export function createTimeConnection(host: Host): SSHProvisionerConnection {
  const s = host.ssh;
  const b = s.bastion;
  const bastionKey = b?.privateKeyPath ?? s.privateKeyPath;
  return {
    type: "ssh",
    host: sshHost(host),
    user: s.user ?? "root",
    port: s.port ?? 22,
    timeout: s.timeout ?? DEFAULT_SSH_TIMEOUT,
    privateKey: s.privateKey ?? (s.privateKeyPath !== undefined ? keyFile(s.privateKeyPath) : undefined),
    agent: usesAgent(host) ? "true" : "false",
    hostKey: s.hostKey,
    scriptPath: s.scriptPath,
    bastionHost: b?.host,
    bastionPort: b ? b.port ?? 22 : undefined,
    bastionUser: b ? b.user ?? s.user ?? "root" : undefined,
    bastionPrivateKey: b ? (bastionKey !== undefined ? keyFile(bastionKey) : s.privateKey) : undefined,
    bastionHostKey: b?.hostKey,
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
  if (`${prefix}host_key` in d) c.host_key = ref("host_key");
  if (`${prefix}script_path` in d) c.script_path = ref("script_path");
  if (`${prefix}bastion_host` in d) {
    c.bastion_host = ref("bastion_host");
    c.bastion_port = ref("bastion_port");
    c.bastion_user = ref("bastion_user");
    if (`${prefix}bastion_private_key_path` in d) {
      c.bastion_private_key = `\${file(pathexpand(self.input.${prefix}bastion_private_key_path))}`;
    }
    if (`${prefix}bastion_host_key` in d) c.bastion_host_key = ref("bastion_host_key");
  }
  return c;
}
