/**
 * K3sServer: the control plane on one host, Kilo-ready, with its tokens generated here and its
 * admin kubeconfig and CA-pinned agent join token read back through Terraform.
 */
import { Annotations, AssetType, Aspects, Fn, Lazy, TerraformAsset, TerraformOutput, TerraformStack, Token } from "cdktf";
import { Construct } from "constructs";
import * as dataLocalCommand from "@cdktf/provider-local/lib/data-local-command";
import * as dataLocalSensitiveFile from "@cdktf/provider-local/lib/data-local-sensitive-file";
import * as sensitiveFile from "@cdktf/provider-local/lib/sensitive-file";
import * as password from "@cdktf/provider-random/lib/password";
import { connectionDescription, destroyTimeConnection } from "./connection";
import * as v from "./validate";
import { EtcdSnapshotSettings, serverConfig } from "../render/k3s-config";
import { CDKTF_LATE_VALUES } from "./late-values";
import { renderDrainScript, renderUninstallScript } from "../render/uninstall-script";
import { ensureProvider, OptInRisk, terraformLiteral } from "./internal";
import { duplicateAddresses, haErrors, haWarnings, requireHost, SensitiveSource, sensitiveOutputErrors } from "./cluster-checks";
import { localPath } from "./local-path";
import { K3sNode, K3sNodeProps, NodeRole } from "./k3s-node";
import { fetchProgramFile } from "../deploy/fetch-program";

/** Apps whose TerraformOutputs are checked for secrets shown without `sensitive: true` (once each). */
const outputsChecked = new WeakSet<object>();

/** Where the kubeconfig fetch keeps a server's admin credentials, relative to Terraform's working directory. */
const secretsPath = (server: K3sServer) => `.cdktf-k3s-kilo-secrets/${server.node.addr}.json`;
/** Removes the file named by its argument, then its directory if that is now empty. */
const REMOVE_SECRETS_JS = "const fs=require('fs'),path=require('path');const f=process.argv[1];" +
  "fs.rmSync(f,{force:true});try{fs.rmdirSync(path.dirname(f))}catch(e){}";

/**
 * Settings of a K3s server.
 */
export interface K3sServerProps extends K3sNodeProps {
  /**
   * Name of the cluster in the kubeconfig (cluster, context and user names derive from it).
   * @default "k3s"
   */
  readonly clusterName?: string;
  /**
   * The cluster's registration address: what agents, joining servers and the kubeconfig reach the
   * API at, added to every server's certificate. With several servers, give a fixed address that
   * follows the control plane (a DNS name with a record per server, a load balancer, a floating IP):
   * by default it is the first server's address, and while that server is down no new agent or
   * server can join and the kubeconfig points at a dead address (running agents are unaffected:
   * their K3s load balancer knows every server). Set it on the first server; joining servers use
   * the first server's.
   * @default - host.address of the cluster's first server
   */
  readonly apiAddress?: string;
  /**
   * Extra names or addresses for the API server certificate (DNS names, load balancers).
   * @default - only apiAddress and host.address
   */
  readonly tlsSans?: string[];
  /**
   * Pod network. Kilo reads each node's share of it from Kubernetes.
   * @default "10.42.0.0/16"
   */
  readonly clusterCidr?: string;
  /**
   * Service network.
   * @default "10.43.0.0/16"
   */
  readonly serviceCidr?: string;
  /**
   * Encrypt Secrets at rest in the datastore.
   * @default true
   */
  readonly secretsEncryption?: boolean;
  /**
   * Enforce NetworkPolicy with K3s's embedded controller (kube-router's network policy
   * firewall, the enforcement Kilo documents). Set false only if you run another policy engine.
   * @default true
   */
  readonly networkPolicy?: boolean;
  /**
   * Run K3s's ServiceLB (klipper-lb), which serves every LoadBalancer Service (Traefik's 80/443
   * included) on the nodes' own addresses. kube-proxy accepts that traffic before ufw sees it, so
   * with ServiceLB on, every LoadBalancer port is open to the Internet on every node, whatever
   * PeerFirewall says.
   * @default false
   */
  readonly serviceLoadBalancer?: boolean;
  /**
   * Also write the admin kubeconfig to this local file (mode 0600) on the machine running
   * `cdktf deploy`. It is rewritten on every apply that changes it, so deleting it is harmless.
   * `~` is expanded on the deploying machine, as for `privateKeyPath`; a relative path is relative
   * to the project directory (where `cdktf synth` runs, the one with cdktf.json), not to the
   * stack's directory under cdktf.out, and is written into the synthesized stack as an absolute path.
   * @default - no file; read the `kubeconfig` attribute instead
   */
  readonly kubeconfigPath?: string;
  /**
   * Add Terraform outputs to the server's stack: `<id>_api_server_url`, `<id>_nodes` (every
   * node of the cluster: node name → address) and `<id>_kubeconfig` (sensitive: `cdktf output`
   * and `terraform output` hide it unless asked by name).
   * @default false
   */
  readonly outputs?: boolean;
  /**
   * Join this server to another server's cluster, for a highly available control plane. The first
   * server (the one without `join`) starts the embedded etcd cluster (`cluster-init`); each joining
   * server registers at the first server's `apiAddress` with the server token in the CA-pinned
   * `K10<ca hash>::server:<secret>` form, so it verifies the cluster before it sends the secret.
   * Servers join one at a time, in the order they were created; agents install once every server
   * is up. Use an odd number of servers (3 or 5): etcd needs a majority.
   * Tokens, CIDRs, the cluster name and the kubeconfig are the first server's.
   * @default - this server starts a cluster of its own
   */
  readonly join?: K3sServer;
  /**
   * An external datastore instead of embedded etcd: a `postgres://`, `mysql://` or `https://` (etcd)
   * endpoint for K3s's `datastore-endpoint`. It usually holds a password, so pass it as a sensitive
   * value (a `TerraformVariable` with `sensitive: true`, or a secret manager's data source): it is
   * written into /etc/rancher/k3s/config.yaml only, never onto a command line. A password in a literal
   * part (also one joined to a token) is refused; a plaintext connection (http://, sslmode that allows
   * plaintext, MySQL without tls) is warned about. Set it on the first server; joining servers use
   * the same datastore (and then need no `server` URL to join).
   * @default - embedded etcd when servers join, SQLite for a single server
   */
  readonly datastoreEndpoint?: string;
  /**
   * etcd snapshots of an embedded etcd cluster: when, how many, where on each server, and a copy in
   * S3-compatible object storage. Set on the first server of a cluster whose servers join it (the
   * embedded etcd this library starts); every server of the cluster gets the settings in its
   * /etc/rancher/k3s/config.yaml, since K3s takes scheduled snapshots on every etcd server. Refused
   * with an external datastore (back that up with the database's own tools) and on a single server
   * (SQLite). S3 credentials are accepted only as Terraform values (a `TerraformVariable` with
   * `sensitive: true`): they reach config.yaml (mode 0600) and nothing else but digests.
   * See docs/etcd-snapshots.md for restoring.
   * @default - K3s's defaults on embedded etcd: a snapshot at 00:00 and 12:00 on every server, 5 kept, under /var/lib/rancher/k3s/server/db/snapshots, no S3
   */
  readonly etcdSnapshots?: EtcdSnapshotOptions;
  /**
   * How a change that restarts K3s (a version bump, a config change) rolls over the cluster's
   * agents. Set on the first server; it applies to the whole cluster.
   * @default - one agent at a time
   */
  readonly rollout?: RolloutOptions;
  /**
   * Take this server out of the cluster (as K3sAgent's `decommission`): deploying with `true`
   * drains it, deletes its Node (K3s then removes its etcd member) from another server, uninstalls
   * K3s and drops it from every firewall and the mesh; then delete the construct. Refused for the
   * first server while others join through it, and when fewer than a quorum of etcd servers would
   * be left.
   * @default false
   */
  readonly decommission?: boolean;
  /**
   * How long decommissioning this server waits for its pods to drain before deleting its Node anyway.
   * @default 120
   */
  readonly drainTimeoutSeconds?: number;
}

/**
 * etcd snapshots of a K3s cluster with embedded etcd (K3s's `etcd-snapshot-*` and `etcd-s3*` flags).
 * A setting left out keeps K3s's default.
 */
export interface EtcdSnapshotOptions {
  /**
   * When each server takes a scheduled snapshot: a five-field cron schedule in the server's time
   * zone (minute hour day-of-month month day-of-week), or a descriptor such as `@daily` or `@every 6h`.
   * @default "0 0,12 * * *" (K3s's default: 00:00 and 12:00)
   */
  readonly scheduleCron?: string;
  /**
   * How many scheduled snapshots each server keeps (locally, and in S3 when set); older ones are deleted.
   * @default 5
   */
  readonly retention?: number;
  /**
   * Directory on each server for the snapshots (an absolute path).
   * @default "/var/lib/rancher/k3s/server/db/snapshots"
   */
  readonly dir?: string;
  /**
   * Compress snapshots (zip).
   * @default false
   */
  readonly compress?: boolean;
  /**
   * Also upload every snapshot to an S3-compatible bucket, off the servers.
   * @default - snapshots stay on each server's disk only
   */
  readonly s3?: EtcdSnapshotS3Options;
}

/**
 * Where K3s copies etcd snapshots in S3-compatible object storage.
 */
export interface EtcdSnapshotS3Options {
  /** The bucket's name. */
  readonly bucket: string;
  /**
   * The object store's host, with a port if not the default one, without `https://`.
   * @default "s3.amazonaws.com"
   */
  readonly endpoint?: string;
  /**
   * A folder (key prefix) in the bucket.
   * @default - the bucket's top level
   */
  readonly folder?: string;
  /**
   * The bucket's region.
   * @default "us-east-1"
   */
  readonly region?: string;
  /**
   * The access key ID, as a Terraform value (e.g. a `TerraformVariable` with `sensitive: true`);
   * a literal string is refused. Give it with `secretKey`.
   * @default - no keys: K3s uses the server's IAM instance role (AWS EC2 only)
   */
  readonly accessKey?: string;
  /**
   * The secret access key, as a Terraform value (e.g. a `TerraformVariable` with `sensitive: true`);
   * a literal string is refused. Written only into each server's config.yaml (mode 0600).
   * @default - no keys: K3s uses the server's IAM instance role (AWS EC2 only)
   */
  readonly secretKey?: string;
  /**
   * Path, on each server, of a PEM file with the CA that signed the object store's certificate
   * (a private CA); the file must be there before K3s starts.
   * @default - the system's trusted CAs
   */
  readonly endpointCa?: string;
  /**
   * Do not verify the object store's certificate (synth warns: use endpointCa instead).
   * @default false
   */
  readonly skipSslVerify?: boolean;
  /**
   * Plain HTTP instead of HTTPS (synth warns).
   * @default false
   */
  readonly insecure?: boolean;
}

/**
 * How restarts roll over the agents of a cluster (servers always go one at a time).
 */
export interface RolloutOptions {
  /**
   * At most this many agents are cordoned, drained and restarted at once.
   * @default 1
   */
  readonly maxUnavailable?: number;
  /**
   * Instead of `maxUnavailable`: this percentage of the cluster's agents, rounded down, at least one.
   * @default - maxUnavailable applies
   */
  readonly maxUnavailablePercent?: number;
  /**
   * How long an agent's deploy waits for a free slot before it fails, naming the nodes that still
   * hold one. The default lets every other agent go first, each within its own drain and readiness
   * bounds, which is hours for a large cluster; set a shorter bound to hear about a stuck rollout
   * sooner (a failed wait changes nothing on the agent: the next deploy retries it).
   * @default - (agents / maxUnavailable, rounded up) × (drain timeout + ready timeout + 120) seconds
   */
  readonly slotTimeoutSeconds?: number;
}

/**
 * A K3s server installed over SSH, with flannel off so Kilo can be the CNI.
 *
 * Generates the server token and a separate agent token; agents only ever receive the latter,
 * in the secure `K10<CA hash>::` form that makes them verify the server before joining.
 */
export class K3sServer extends K3sNode {
  /** The admin kubeconfig, rewritten to `apiServerUrl` (sensitive). */
  public readonly kubeconfig: string;
  /** https://apiAddress:6443 */
  public readonly apiServerUrl: string;
  /** The cluster CA certificate (PEM). */
  public readonly clusterCaCertificate: string;
  /** The admin client certificate (PEM, sensitive). */
  public readonly clientCertificate: string;
  /** The admin client key (PEM, sensitive). */
  public readonly clientKey: string;
  /** sha256 of the cluster CA: the pin in the agents' join token. */
  public readonly caHash: string;
  /** The token agents join with, `K10<caHash>::node:<secret>` (sensitive). */
  public readonly agentJoinToken: string;
  /**
   * The cluster's server token as the first server's config.yaml holds it (`token:`; sensitive): what
   * restoring an etcd snapshot on new hosts needs (`k3s server --cluster-reset --token …`), since it
   * decrypts the bootstrap data inside the snapshot.
   */
  public readonly serverToken: string;
  /** Pod network CIDR. */
  public readonly clusterCidr: string;
  /** Service network CIDR. */
  public readonly serviceCidr: string;
  /** @internal The agent token's secret part (random_password), known at plan time. */
  public readonly _agentTokenSecret: string;
  /** Name of the cluster in the kubeconfig. */
  public readonly clusterName: string;
  /** The address clients and agents reach the API at. */
  public readonly apiAddress: string;
  /** The server this one joined, if any. */
  public readonly joins?: K3sServer;
  /** The first server of this server's cluster (itself when it joined none). */
  public readonly clusterRoot: K3sServer;
  /** The external datastore endpoint (sensitive), if any. */
  public readonly datastoreEndpoint?: string;
  /** Agents that join this server, in the order they were created (they register themselves). */
  private readonly agents: K3sNode[] = [];
  /** On the first server: every server of the cluster, in join order (itself first). */
  private readonly servers: K3sServer[] = [];
  /** @internal The server token's secret part. */
  public readonly _serverTokenSecret: string;
  private readonly rolloutOptions: RolloutOptions;
  /** Where this (first) server's secrets come from, for the check of TerraformOutputs. */
  private readonly _sensitiveSources: SensitiveSource[] = [];

  constructor(scope: Construct, id: string, props: K3sServerProps) {
    super(scope, id, props, NodeRole.SERVER);
    requireHost(this, props);
    ensureProvider(this, "random");
    ensureProvider(this, "local");
    const root = props.join instanceof K3sServer ? props.join.clusterRoot : this;
    this.joins = props.join instanceof K3sServer ? props.join : undefined;
    this.clusterRoot = root;
    this.rolloutOptions = props.rollout ?? {};
    this.node.addValidation({ validate: () => this.validateServer(props) });
    // At synth, once every server of the cluster exists.
    if (root === this) Aspects.of(this).add({ visit: (c) => { if (c === this) for (const w of haWarnings(this)) Annotations.of(this).addWarning(w); } });
    if (root === this && props.datastoreEndpoint !== undefined) this.warnAboutPlaintextDatastore(props);
    const h = this.host;

    if (root === this) {
      this.clusterName = props.clusterName ?? "k3s";
      this.clusterCidr = props.clusterCidr ?? "10.42.0.0/16";
      this.serviceCidr = props.serviceCidr ?? "10.43.0.0/16";
      this.apiAddress = props.apiAddress ?? props.host?.address;
      this.apiServerUrl = `https://${bracketIpv6(this.apiAddress)}:6443`;
      this.datastoreEndpoint = props.datastoreEndpoint !== undefined ? Fn.sensitive(props.datastoreEndpoint) : undefined;
      // Letters and digits only: safe in YAML, URLs and the `K10…::node:<secret>` join token.
      const serverToken = new password.Password(this, "server-token", { length: 48, special: false });
      const agentToken = new password.Password(this, "agent-token", { length: 48, special: false });
      this._serverTokenSecret = serverToken.result;
      this._agentTokenSecret = agentToken.result;
      this.servers.push(this);
      this._sensitiveSources.push(
        { element: serverToken, names: { "": `the server token of ${this.node.path}` } },
        { element: agentToken, names: { "": `the agent token of ${this.node.path} (agentJoinToken)` } });
      // One check of every TerraformOutput per app, over every cluster's secrets.
      if (!outputsChecked.has(this.node.root)) {
        outputsChecked.add(this.node.root);
        this.node.addValidation({ validate: () => sensitiveOutputErrors("cdktf-k3s-kilo", this.node.root, this.node.root.node.findAll()
          .filter((c): c is K3sServer => c instanceof K3sServer).flatMap((sv) => sv._sensitiveSources)) });
      }
    } else {
      this.clusterName = root.clusterName;
      this.clusterCidr = root.clusterCidr;
      this.serviceCidr = root.serviceCidr;
      this.apiAddress = root.apiAddress;
      this.apiServerUrl = root.apiServerUrl;
      this.datastoreEndpoint = root.datastoreEndpoint;
      this._serverTokenSecret = root._serverTokenSecret;
      this._agentTokenSecret = root._agentTokenSecret;
    }
    this.serverToken = root === this ? Fn.sensitive(this._serverTokenSecret) : root.serverToken;
    if (root === this) this._etcdSnapshots = etcdSnapshotSettings(props.etcdSnapshots);
    // The server that joined last before this one: joins are serial (see _registerServer).
    const previous = root === this ? undefined : root._registerServer(this);

    const settings = {
      nodeName: this.nodeName,
      address: h.address,
      privateAddress: h.privateAddress,
      publicAddressOnInterface: h.publicAddressOnInterface ?? true,
      labels: this.labels,
      taints: this.taints,
      extraConfig: props.extraConfig ?? {},
      agentToken: this._agentTokenSecret,
      // Every server's certificate covers the registration address, whichever server answers it.
      tlsSans: [this.apiAddress, h.address, ...(root._tlsSans ?? []), ...(props.tlsSans ?? [])],
      clusterCidr: this.clusterCidr,
      serviceCidr: this.serviceCidr,
      secretsEncryption: (root === this ? props.secretsEncryption : root._secretsEncryption) ?? true,
      networkPolicy: props.networkPolicy ?? true,
      serviceLoadBalancer: props.serviceLoadBalancer ?? false,
      nodePortAddresses: this.nodePortAddresses,
      datastoreEndpoint: this.datastoreEndpoint,
      // Every etcd server takes the scheduled snapshots (and uploads its own to S3).
      etcdSnapshots: root._etcdSnapshots,
    };
    this._tlsSans = props.tlsSans;
    this._secretsEncryption = props.secretsEncryption;
    const joining = previous !== undefined;
    // With an external datastore the servers share it and the token; only embedded etcd needs a URL to join.
    const joinUrl = joining && this.datastoreEndpoint === undefined ? root.apiServerUrl : undefined;
    // Rendered at synth: whether others join this first server (cluster-init) is known only then.
    const configWith = (token: string) => () => serverConfig({
      ...settings,
      token,
      joinUrl,
      clusterInit: !joining && this.datastoreEndpoint === undefined && root.servers.length > 1,
    }, CDKTF_LATE_VALUES);
    // CA-pinned: the joining server checks the cluster CA against the hash before sending the secret.
    const config = configWith(joining ? Fn.join("", ["K10", root.caHash, "::server:", this._serverTokenSecret]) : this._serverTokenSecret);
    // As for agents: the trigger digests the secret, not the CA hash, which Terraform reads late.
    const fingerprintConfig = configWith(this._serverTokenSecret);
    const destroy: Array<Record<string, unknown>> = [];
    if (joining) {
      // Drained and deleted from another server: deleting the Node makes K3s remove its etcd
      // member (k3s-io/k3s pkg/etcd/member_controller.go, onRemove).
      destroy.push({
        "remote-exec": {
          when: "destroy",
          inline: [terraformLiteral(renderDrainScript(this.nodeName, props.drainTimeoutSeconds ?? 120, CDKTF_LATE_VALUES))],
          connection: destroyTimeConnection(root.host, "server_"),
          on_failure: "continue",
        },
      });
    }
    destroy.push({
      "remote-exec": {
        when: "destroy",
        inline: [terraformLiteral(renderUninstallScript("server"))],
        connection: destroyTimeConnection(h),
      },
    });
    if (root === this) {
      // Once the cluster is gone, so are the admin credentials the kubeconfig fetch keeps on the
      // deploying machine. Node, which the fetch needs anyway, removes the file (and the directory
      // once it is empty) the same way on every OS; the path is relative to Terraform's working
      // directory, as the fetch's is.
      destroy.push({
        "local-exec": {
          when: "destroy",
          interpreter: ["node", "-e", REMOVE_SECRETS_JS],
          command: secretsPath(this),
        },
      });
    }
    this._wireInstall(config, this._installSettings(props),
      joining ? connectionDescription(root.host, "server_") : {},
      destroy,
      // Serial joins: after the previous server, so destroyed before it too.
      previous ? [previous.installation] : [],
      fingerprintConfig);
    if (previous) {
      this.addInstallPrerequisite(previous.installation);
      // Servers before agents: agents created earlier now also wait for this server.
      for (const n of this.clusterNodes) if (n.role === NodeRole.AGENT) n.addInstallPrerequisite(this.installation);
    }

    if (root !== this) {
      this.kubeconfig = root.kubeconfig;
      this.clusterCaCertificate = root.clusterCaCertificate;
      this.clientCertificate = root.clientCertificate;
      this.clientKey = root.clientKey;
      this.caHash = root.caHash;
      this.agentJoinToken = root.agentJoinToken;
      if (props.outputs === true) this.addOutputs();
      return;
    }

    // Read on every plan once the install has run: the kubeconfig can always be fetched again.
    // local_command's stdout is not a sensitive attribute (and is logged at TRACE), so the program
    // prints only public parts; the secret ones go to a 0600 file in a 0700 directory beside the
    // directory under Terraform's working directory, read back through local_sensitive_file, whose
    // content is sensitive.
    const secretsFile = Fn.abspath(secretsPath(this));
    // The program is copied into the stack's output and run from there (a path relative to the
    // stack directory, where Terraform runs): the library's own location need not outlive synth.
    const program = new TerraformAsset(this, "credentials-program", { path: fetchProgramFile(), type: AssetType.FILE });
    const fetch = new dataLocalCommand.DataLocalCommand(this, "credentials", {
      command: "node",
      arguments: [program.path],
      stdin: Fn.jsonencode({
        ...connectionDescription(h),
        api_server_url: this.apiServerUrl,
        cluster_name: this.clusterName,
        secrets_file: secretsFile,
      }),
      dependsOn: [this._installStep],
    });
    const secrets = new dataLocalSensitiveFile.DataLocalSensitiveFile(this, "credentials-secrets", {
      filename: Fn.lookup(Fn.jsondecode(fetch.stdout), "secrets_file", ""),
      dependsOn: [fetch],
    });
    this._sensitiveSources.push({ element: secrets, names: {
      "": `the admin credentials of ${this.node.path}`,
      kubeconfig: `${this.node.path}'s kubeconfig`,
      client_key: `${this.node.path}'s clientKey`,
      client_certificate: `${this.node.path}'s clientCertificate`,
    } });
    const field = (name: string) => Fn.lookup(Fn.jsondecode(fetch.stdout), name, "");
    const secret = (name: string) => Fn.sensitive(Fn.lookup(Fn.jsondecode(secrets.content), name, ""));
    this.kubeconfig = secret("kubeconfig");
    this.clusterCaCertificate = field("cluster_ca_certificate");
    this.clientCertificate = secret("client_certificate");
    this.clientKey = secret("client_key");
    this.caHash = field("ca_hash");
    this.agentJoinToken = Fn.sensitive(Fn.join("", ["K10", this.caHash, "::node:", this._agentTokenSecret]));

    if (props.kubeconfigPath !== undefined) {
      const file = new sensitiveFile.SensitiveFile(this, "kubeconfig-file", {
        filename: localPath(props.kubeconfigPath),
        content: this.kubeconfig,
        filePermission: "0600",
        directoryPermission: "0700",
      });
      this._sensitiveSources.push({ element: file, names: { "": `${this.node.path}'s kubeconfig file content` } });
    }
    if (props.outputs === true) this.addOutputs();
    // The cluster's description for `cdktf-k3s-kilo-report` (under "//", which Terraform ignores),
    // computed at synth once every agent, firewall and mesh exists. Required lazily: the report
    // module imports the constructs that import this one.
    TerraformStack.of(this).addOverride(`//.cdktf-k3s-kilo.${this.node.path.replace(/\./g, "_")}`, Lazy.anyValue({
      produce: () => require("./cluster-report").embeddedReport(this),
    }));
  }

  /**
   * @internal The server's documented opt-ins that publish Services or turn a protection off, on
   * top of a node's: warned about once per stack, naming every server that has them.
   */
  protected _optIns(props: K3sNodeProps): OptInRisk[] {
    const risks = super._optIns(props);
    const p = props as K3sServerProps;
    if (this.decommissioned) return risks;
    if (p.serviceLoadBalancer === true) {
      risks.push({ key: "serviceLoadBalancer", text: (nodes) => `serviceLoadBalancer: true on ${nodes}: ServiceLB serves every LoadBalancer Service (Traefik's 80/443 included) ` +
        "on the nodes' own addresses, and kube-proxy accepts that traffic ahead of ufw: those ports are open to the Internet whatever PeerFirewall says. " +
        "Leave serviceLoadBalancer off unless that is what you want" });
    }
    if (p.networkPolicy === false) {
      risks.push({ key: "networkPolicy", text: (nodes) => `networkPolicy: false on ${nodes}: NetworkPolicy objects are not enforced: every pod can reach every other pod, ` +
        "and every node and mesh peer can reach every pod, whatever the policies say. Leave networkPolicy on unless another policy engine enforces them" });
    }
    const s3 = this.clusterRoot === this ? p.etcdSnapshots?.s3 : undefined;
    if (s3?.insecure === true) {
      risks.push({ key: "etcdSnapshots.s3.insecure", text: (nodes) => `etcdSnapshots.s3.insecure: true on ${nodes}: every server uploads its etcd snapshots over plain HTTP, ` +
        "so the whole cluster state (Secrets included) and the access key ID cross the network readable by anyone on the path, and a snapshot downloaded for a restore can be altered on the way. " +
        "Leave insecure off (HTTPS), with endpointCa if the object store's certificate comes from a private CA" });
    }
    if (s3?.skipSslVerify === true) {
      risks.push({ key: "etcdSnapshots.s3.skipSslVerify", text: (nodes) => `etcdSnapshots.s3.skipSslVerify: true on ${nodes}: the object store's certificate is not checked, ` +
        "so whoever intercepts the connection receives every etcd snapshot (the whole cluster state, Secrets included) and can hand a forged one to a restore. " +
        "Give endpointCa (the CA that signed the store's certificate, as a file on each server) instead" });
    }
    if (p.secretsEncryption === false && this.clusterRoot === this) {
      risks.push({ key: "secretsEncryption", text: (nodes) => `secretsEncryption: false on ${nodes}: Secrets are stored unencrypted in the datastore, its snapshots and backups, ` +
        "so whoever reads any of them reads every Secret of the cluster. Leave secretsEncryption on" });
    }
    return risks;
  }

  /** @internal The cluster's pod network. */
  public get _clusterCidr(): string | undefined {
    return this.clusterCidr;
  }

  /** @internal The first server's etcd snapshot settings (credentials marked sensitive), for every server. */
  public _etcdSnapshots?: EtcdSnapshotSettings;
  /** @internal */
  public _tlsSans?: string[];
  /** @internal */
  public _secretsEncryption?: boolean;

  /**
   * Every server of this server's cluster, in join order (the first server first),
   * decommissioned ones included.
   */
  public get clusterServers(): K3sServer[] {
    return [...this.clusterRoot.servers];
  }

  /**
   * How many agents of the cluster may restart at once (RolloutOptions of the first server).
   */
  public get maxUnavailable(): number {
    const o = this.clusterRoot.rolloutOptions;
    if (o.maxUnavailablePercent !== undefined) {
      const agents = this.clusterNodes.filter((n) => n.role === NodeRole.AGENT && !n.decommissioned).length;
      return Math.max(1, Math.floor((agents * o.maxUnavailablePercent) / 100));
    }
    return Math.max(1, Math.floor(o.maxUnavailable ?? 1));
  }

  /**
   * @internal The bound an agent waits for a rollout slot (RolloutOptions of the first server),
   * or undefined for the default computed from the agent's own bounds.
   */
  public get _slotTimeoutSeconds(): number | undefined {
    return this.clusterRoot.rolloutOptions.slotTimeoutSeconds;
  }

  /**
   * @internal Called by a joining server: it becomes part of this (first) server's cluster, joins
   * after the server that joined last, and every agent of the cluster installs after it.
   * Returns the server it must wait for.
   *
   * Serial, not concurrent: K3s adds a joining server to etcd with MemberAddAsLearner and treats a
   * failed join as fatal (k3s-io/k3s pkg/etcd/etcd.go, join()), and etcd admits one learner at a
   * time, so two servers joining at once make one of them fail and restart.
   */
  public _registerServer(server: K3sServer): K3sServer {
    const previous = this.servers[this.servers.length - 1];
    this.servers.push(server);
    return previous;
  }

  /** @internal The server agents wait for before installing: the last to join. */
  public _lastServer(): K3sServer {
    return this.clusterRoot.servers[this.clusterRoot.servers.length - 1];
  }

  /**
   * The whole cluster: every server (first server first) and every agent that joins any of them, in
   * the order they were created (decommissioned ones included). PeerFirewall and KiloMesh cover these nodes by default.
   */
  public get clusterNodes(): K3sNode[] {
    const servers = this.clusterRoot.servers;
    return [...servers, ...servers.flatMap((sv) => sv.agents)];
  }

  /** @internal Called by K3sAgent: an agent that joins this server becomes part of its cluster. */
  public _registerAgent(agent: K3sNode): void {
    if (!this.agents.includes(agent)) this.agents.push(agent);
  }

  /** Outputs a user would otherwise write by hand; the node map is computed at synth, once every agent has registered. */
  private addOutputs(): void {
    const stack = TerraformStack.of(this);
    const prefix = this.node.scopes.slice(this.node.scopes.indexOf(stack) + 1).map((s) => s.node.id).join("_").replace(/[^A-Za-z0-9_-]/g, "_");
    const output = (name: string, value: unknown, description: string, sensitive = false) =>
      new TerraformOutput(this, `output-${name}`, { value, description, sensitive }).overrideLogicalId(`${prefix}_${name}`);
    output("api_server_url", this.apiServerUrl, `Kubernetes API of ${this.clusterName}`);
    output("nodes", Lazy.anyValue({
      produce: () => Object.fromEntries(this.clusterNodes.filter((n) => !n.decommissioned).map((n) => [n.nodeName, n.host.address])),
    }), "Every node of the cluster: node name → public address");
    output("kubeconfig", this.kubeconfig, "Admin kubeconfig (sensitive): cdktf output / terraform output -raw <name>", true);
  }

  /**
   * A datastore reached without TLS (or with a mode that falls back to plaintext) is a warning, not
   * an error: on the same private network as the servers it can be what you want, which synth cannot
   * tell. The message says what crosses the network and how to encrypt it.
   */
  private warnAboutPlaintextDatastore(props: K3sServerProps): void {
    const extra = props.extraConfig ?? {};
    const tlsFiles = ["datastore-cafile", "datastore-certfile", "datastore-keyfile"].some((k) => extra[k] !== undefined || extra[`${k}+`] !== undefined);
    const plain = v.datastorePlaintextRisk(props.datastoreEndpoint!, tlsFiles);
    if (!plain) return;
    Annotations.of(this).addWarning(`K3sServer "${this.node.path}": datastoreEndpoint: ${plain.risk}: the datastore holds the whole cluster state, Secrets included, ` +
      `and whoever can read or change traffic on the way to it can read or change the cluster. ${plain.fix[0].toUpperCase()}${plain.fix.slice(1)}. ` +
      "If the datastore is reached over a private network you trust, this warning is expected (synth cannot tell).");
  }

  /** etcdSnapshots: only on the first server of an embedded etcd cluster, with sound values and credentials from Terraform. */
  private etcdSnapshotErrors(props: K3sServerProps): string[] {
    const o = props.etcdSnapshots;
    if (o === undefined) return [];
    const errors: string[] = [];
    const err = (field: string, msg: string | undefined) => { if (msg) errors.push(`K3sServer "${this.node.path}": ${field}: ${msg}`); };
    const root = this.clusterRoot;
    if (root !== this) {
      err("etcdSnapshots", `set it on the cluster's first server ${root.node.path} only: every server of the cluster gets the first server's settings`);
      return errors;
    }
    if (props.datastoreEndpoint !== undefined) {
      err("etcdSnapshots", "this cluster keeps its data in the external datastore (datastoreEndpoint), not in embedded etcd, so K3s takes no etcd snapshots; " +
        "back the datastore up with its own tools (pg_dump, mysqldump, etcdctl snapshot save), and leave etcdSnapshots out");
    } else if (root.servers.length < 2) {
      err("etcdSnapshots", "a single server keeps its data in SQLite, not in etcd, so K3s takes no etcd snapshots; " +
        "etcd snapshots need servers that join this one (join: on 2 more K3sServers, embedded etcd), or leave etcdSnapshots out and back up /var/lib/rancher/k3s/server with K3s stopped");
    }
    if (o.scheduleCron !== undefined) err("etcdSnapshots.scheduleCron", v.checkCron(o.scheduleCron));
    const r = o.retention;
    if (r !== undefined && !v.isNumberToken(r) && (!Number.isInteger(r) || r < 1)) {
      err("etcdSnapshots.retention", `${r} must be a whole number of snapshots, at least 1`);
    }
    if (o.dir !== undefined) err("etcdSnapshots.dir", v.checkAbsolutePath(o.dir));
    const s3 = o.s3;
    if (s3 === undefined) return errors;
    if (s3.bucket === undefined) err("etcdSnapshots.s3.bucket", "is required: the name of the bucket the snapshots go to");
    else err("etcdSnapshots.s3.bucket", v.checkS3Bucket(s3.bucket));
    if (s3.endpoint !== undefined) err("etcdSnapshots.s3.endpoint", v.checkS3Endpoint(s3.endpoint));
    if (s3.endpointCa !== undefined) err("etcdSnapshots.s3.endpointCa", v.checkAbsolutePath(s3.endpointCa));
    for (const [field, value, variable] of [["accessKey", s3.accessKey, "etcd_s3_access_key"], ["secretKey", s3.secretKey, "etcd_s3_secret_key"]] as const) {
      if (value === undefined) continue;
      err(`etcdSnapshots.s3.${field}`, v.checkSecretFromTerraform(value,
        `new TerraformVariable(this, "${variable}", { type: "string", sensitive: true }).stringValue, set with TF_VAR_${variable}`));
    }
    if ((s3.accessKey === undefined) !== (s3.secretKey === undefined)) {
      const [given, missing] = s3.accessKey === undefined ? ["secretKey", "accessKey"] : ["accessKey", "secretKey"];
      err(`etcdSnapshots.s3.${missing}`, `required with ${given}: give both keys, or neither to use the server's IAM instance role (AWS EC2 only)`);
    }
    return errors;
  }

  private validateServer(props: K3sServerProps): string[] {
    const errors: string[] = [];
    const err = (field: string, msg: string | undefined) => { if (msg) errors.push(`K3sServer "${this.node.path}": ${field}: ${msg}`); };
    if (props.apiAddress !== undefined) err("apiAddress", v.checkAddress(props.apiAddress));
    for (const san of props.tlsSans ?? []) err("tlsSans", v.checkAddress(san));
    if (props.clusterCidr !== undefined) err("clusterCidr", v.checkCidr(props.clusterCidr));
    if (props.serviceCidr !== undefined) err("serviceCidr", v.checkCidr(props.serviceCidr));
    if (props.clusterName !== undefined) err("clusterName", v.checkNodeName(props.clusterName));
    if (props.host?.address !== undefined) err("host.address", v.checkNodeAddress(props.host.address));
    if (this.clusterRoot === this) errors.push(...duplicateAddresses(this));
    errors.push(...haErrors(this, props));
    errors.push(...this.etcdSnapshotErrors(props));
    const kp = props.kubeconfigPath;
    if (kp !== undefined && !v.isToken(kp) && kp.trim() === "") {
      err("kubeconfigPath", "is empty; give the file to write the admin kubeconfig to, such as \"~/.kube/k3s.yaml\", or leave kubeconfigPath out");
    } else if (kp !== undefined && !v.isToken(kp) && /^~[^/]/.test(kp)) {
      err("kubeconfigPath", `"${kp}": give a file path; only "~" and "~/…" are expanded (to the deploying user's home), not "~user"`);
    }
    const s = props.host?.ssh;
    if (s && s.privateKeyPath === undefined && s.agent === false) {
      err("host.ssh", "the kubeconfig fetch runs ssh on the deploying machine and needs privateKeyPath or the SSH agent");
    }
    return errors;
  }
}

/** The settings as config.yaml gets them: credentials marked sensitive, so Terraform hides them. */
function etcdSnapshotSettings(o: EtcdSnapshotOptions | undefined): EtcdSnapshotSettings | undefined {
  if (o === undefined) return undefined;
  const s3 = o.s3;
  const secret = (value: string | undefined) => (value === undefined ? undefined : Fn.sensitive(value));
  return {
    scheduleCron: o.scheduleCron,
    retention: o.retention,
    dir: o.dir,
    compress: o.compress,
    s3: s3 === undefined ? undefined : { ...s3, accessKey: secret(s3.accessKey), secretKey: secret(s3.secretKey) },
  };
}

function bracketIpv6(address: string): string {
  return !Token.isUnresolved(address) && address?.includes(":") ? `[${address}]` : address;
}
