/**
 * The host and connection model: where a node lives and how Terraform reaches it over SSH.
 * Plain data; constructs turn it into `connection` blocks and destroy-time inputs.
 */

/**
 * The cdktf context key of the strict host-key mode: with `"cdktf-k3s-kilo:requireHostKeys": true`
 * (in cdktf.json's `context`, or `app.node.setContext`), synth refuses every node and bastion
 * whose SSH host key is not pinned. Without it, synth warns once per stack, listing them.
 */
export const REQUIRE_HOST_KEYS_CONTEXT = "cdktf-k3s-kilo:requireHostKeys";

/**
 * A jump host that SSH goes through to reach a node (ProxyJump).
 */
export interface SshBastion {
  /** Address of the jump host (IP, DNS name or a Terraform token). */
  readonly host: string;
  /**
   * SSH port of the jump host.
   * @default 22
   */
  readonly port?: number;
  /**
   * User on the jump host.
   * @default - the node's SSH user
   */
  readonly user?: string;
  /**
   * Path of the private key for the jump host on the machine that runs `cdktf deploy`.
   * @default - the node's privateKeyPath, else the SSH agent
   */
  readonly privateKeyPath?: string;
  /**
   * Pinned public host key of the jump host (`ssh-ed25519 AAAA…`), literal or a token. Pin it
   * together with the node's `hostKey` (both hops or neither).
   * @default - the jump host's key is not verified (listed in a synth warning)
   */
  readonly hostKey?: string;
}

/**
 * How Terraform reaches a node over SSH.
 *
 * Credentials: prefer `privateKeyPath` or an SSH agent. Both work for everything,
 * including destroy-time steps and the kubeconfig fetch, without putting a key in state.
 * `privateKey` (the key's content) is used only by create-time provisioners, whose
 * connection blocks Terraform never stores; steps that must run from state alone
 * (destroy, the kubeconfig fetch) then fall back to the SSH agent.
 */
export interface SshConnection {
  /**
   * Login user: root, or a user with passwordless sudo (`NOPASSWD`).
   * @default "root"
   */
  readonly user?: string;
  /**
   * SSH port (a number; a string such as "22" is refused).
   * @default 22
   */
  readonly port?: number;
  /**
   * Address SSH connects to, when it differs from the node's public address
   * (for example a private address reached through a bastion).
   * @default - the host's `address`
   */
  readonly host?: string;
  /**
   * Path of the private key on the machine that runs `cdktf deploy` (`~` is expanded).
   * Only the path is stored in Terraform state, never the key.
   * @default - no key file; the SSH agent is used
   */
  readonly privateKeyPath?: string;
  /**
   * The private key itself, as a Terraform token (e.g. a TerraformVariable with `sensitive: true`):
   * a literal key is refused, because it would be written in clear into cdk.tf.json and saved plans.
   * Used by create-time provisioners only (never stored in state); destroy-time steps and the
   * kubeconfig fetch use `privateKeyPath` or the SSH agent instead.
   * @default - none
   */
  readonly privateKey?: string;
  /**
   * Use the SSH agent at `SSH_AUTH_SOCK`.
   * @default - true when neither privateKeyPath nor privateKey is given
   */
  readonly agent?: boolean;
  /**
   * Pinned public host key of the node (`ssh-ed25519 AAAA…`), literal or a Terraform token (e.g.
   * from the resource that generated it). Strongly recommended on the public Internet: without it
   * Terraform does not check the host at all, and synth warns. Pin the key type Terraform
   * negotiates: ECDSA when the server has an ECDSA key, so give a server one host key, or pin that one.
   * Behind a bastion, pin both hops or neither.
   * @default - the host key is not verified by Terraform (listed in a synth warning)
   */
  readonly hostKey?: string;
  /**
   * Jump host to reach the node through.
   * @default - direct connection
   */
  readonly bastion?: SshBastion;
  /**
   * Where Terraform uploads remote scripts: an absolute path of letters, digits, `.`, `_`, `-`
   * and `/` containing `%RAND%`. Set it on hosts whose /tmp is mounted noexec, and on hosts with
   * untrusted local users: Terraform makes the uploaded script world-writable (0777) while it
   * runs, so put it in a directory only the login user can enter, which must exist before the
   * first deploy (Terraform cannot make one without uploading a script the same way): for example
   * /root/.terraform-scripts/terraform_%RAND%.sh, the directory made 0700 by your image or cloud-init.
   * @default "/tmp/terraform_%RAND%.sh" (Terraform's default)
   */
  readonly scriptPath?: string;
  /**
   * How long Terraform keeps trying to connect before the step fails.
   * @default "2m"
   */
  readonly timeout?: string;
}

/**
 * A machine that becomes a cluster node: its public address and how to reach it.
 */
export interface Host {
  /**
   * The public address other nodes and clients reach this node at: an IP, a DNS name,
   * or a Terraform token such as another provider's `ipv4_address`.
   */
  readonly address: string;
  /** How Terraform reaches the node over SSH. */
  readonly ssh: SshConnection;
  /**
   * The address on the node's own interface, when it differs from `address`.
   * @default - none; K3s picks the interface address
   */
  readonly privateAddress?: string;
  /**
   * Whether `address` is configured on the node's own interface. Set false for 1:1 NAT
   * (GCP and OCI free tiers): K3s then advertises it with `node-external-ip` and Kilo is
   * told the endpoint explicitly (`kilo.squat.ai/force-endpoint`).
   * @default true
   */
  readonly publicAddressOnInterface?: boolean;
  /**
   * The node sits behind a NAT that does not forward inbound traffic (a home network,
   * a device in the field). Kilo then keeps its tunnels open with persistent keepalives.
   * @default false
   */
  readonly behindNat?: boolean;
  /**
   * A label for where the node runs (provider or region). Kilo's `location` granularity
   * groups nodes by it; reports show it.
   * @default - none
   */
  readonly location?: string;
}
