/**
 * What K3sServer and K3sAgent share: the host, the node's identity, and the two resources that
 * put K3s on it — a membership record that carries destroy-time cleanup, and an install step
 * that re-runs only when this node's K3s version or configuration changes.
 */
import { Annotations, Aspects, dependable, Fn, ITerraformDependable, Lazy, SSHProvisionerConnection, TerraformStack, Tokenization } from "cdktf";
import { Construct } from "constructs";
import { connectionDescription, createTimeConnection } from "./connection";
import { Host, REQUIRE_HOST_KEYS_CONTEXT } from "../host/host";
import * as v from "./validate";
import { renderK3sConfig, K3sConfig, managedKeyReason, DEFAULT_NODEPORT_ADDRESSES } from "../render/k3s-config";
import { InstallSettings, installScriptParts, RESTART_DECISION_DIGEST, STAGED_CONFIG } from "../render/install-script";
import { joinScript, stagingScriptParts } from "../render/shell";
import { CDKTF_LATE_VALUES } from "./late-values";
import { fingerprint, OptInRisk, reportStackSecurity, requireHostKeys, sharedScriptInline, TerraformData, terraformLiteral } from "./internal";
import { DEFAULT_KILO_SUBNET } from "../render/firewall-rules";
import { K3S_DEFAULT_VERSION, K3S_RELEASE_INSTALL_SCRIPT_URL } from "../versions";

/** The role of a node in the cluster. */
export enum NodeRole {
  /** Runs the K3s control plane. */
  SERVER = "server",
  /** Runs workloads and joins a server. */
  AGENT = "agent",
}

/**
 * How K3s is installed on a node.
 */
export interface K3sInstallOptions {
  /**
   * URL of K3s's install script: a mirror, or `file:///path` for a copy already on the host.
   * The script is fetched once per URL and kept on the host; the install's fingerprint covers
   * its content, so a different script re-runs the install. Credentials in the URL (`user:pass@`)
   * are refused; without `scriptSha256`, synth warns.
   * @default - install.sh of the release tag being installed, K3S_RELEASE_INSTALL_SCRIPT_URL
   * ("https://raw.githubusercontent.com/k3s-io/k3s/v1.33.4%2Bk3s1/install.sh" for the default version)
   */
  readonly scriptUrl?: string;
  /**
   * sha256 (64 hex digits) the install script must have. Checked on the host before the script
   * runs; a mismatch stops the install.
   * @default - not checked: the script is trusted as served over https from the tag's URL
   */
  readonly scriptSha256?: string;
  /**
   * Use the k3s binary already at /usr/local/bin/k3s instead of downloading it
   * (air-gapped hosts; `INSTALL_K3S_SKIP_DOWNLOAD`).
   * @default false
   */
  readonly skipDownload?: boolean;
  /**
   * Install the WireGuard tools with apt-get when `wg` is missing (Debian/Ubuntu).
   * Other distributions must have them already; the install stops with a message saying so.
   * @default true
   */
  readonly installWireguardTools?: boolean;
  /**
   * How long the install waits for K3s to become ready before it fails.
   * @default 300
   */
  readonly readyTimeoutSeconds?: number;
}

/**
 * Settings every K3s node has.
 */
export interface K3sNodeProps {
  /** The machine and how to reach it. */
  readonly host: Host;
  /**
   * The Kubernetes node name.
   * @default - the construct id
   */
  readonly nodeName?: string;
  /**
   * Node labels.
   * @default - none
   */
  readonly labels?: { [key: string]: string };
  /**
   * Node taints in `key=value:Effect` form.
   * @default - none
   */
  readonly taints?: string[];
  /**
   * The K3s release to install. Pinned: nothing floats unless you change it.
   * @default K3S_DEFAULT_VERSION
   */
  readonly version?: string;
  /**
   * How K3s is installed.
   * @default - the pinned release's install script, WireGuard tools installed when missing
   */
  readonly install?: K3sInstallOptions;
  /**
   * Any other K3s config keys (flag names without dashes, lists for repeatable flags), for example
   * `{ "disable": ["traefik"], "kubelet-arg": ["max-pods=150"] }`. Keys this library manages are refused
   * (also in K3s's `key+` form), as are keys that are Terraform values and object values; values may be
   * Terraform values (written into config.yaml through `jsonencode()`).
   * @default - none
   */
  readonly extraConfig?: { [key: string]: any };
  /**
   * The networks (CIDR blocks) whose addresses on this node serve NodePort Services
   * (kube-proxy `--nodeport-addresses`). kube-proxy accepts NodePort traffic before ufw sees it,
   * so this, not PeerFirewall, decides who reaches a NodePort. `["0.0.0.0/0"]` serves them on
   * every address, public ones included (kube-proxy's own default): reachable from the Internet.
   * @default ["10.4.0.0/16"] - Kilo's default WireGuard subnet: the node's mesh address only
   */
  readonly nodePortAddresses?: string[];
}

/**
 * A host running K3s: the common base of K3sServer and K3sAgent.
 */
export abstract class K3sNode extends Construct {
  /** Server or agent. */
  public readonly role: NodeRole;
  /** The machine and how to reach it. */
  public readonly host: Host;
  /** The Kubernetes node name. */
  public readonly nodeName: string;
  /** The K3s release this node runs. */
  public readonly version: string;
  /** Node labels. */
  public readonly labels: { [key: string]: string };
  /** Node taints. */
  public readonly taints: string[];
  /** Where kube-proxy serves NodePorts on this node (`--nodeport-addresses`). */
  public readonly nodePortAddresses: string[];
  /**
   * The node is being taken out of the cluster: its resources are destroyed (running the
   * destroy-time cleanup) while their configuration still exists, and firewalls and the mesh
   * leave it out. Set by the `decommission` prop of K3sAgent and K3sServer.
   */
  public readonly decommissioned: boolean;
  /** Kept in state; its destroy-time provisioners take the node out of the cluster. */
  /** @internal */
  protected _membership!: TerraformData;
  /** Installs or reconfigures K3s; replaced (re-run) when this node's fingerprint changes. */
  /** @internal */
  protected _installStep!: TerraformData;
  private readonly prerequisites: ITerraformDependable[] = [];
  /** The Kilo subnets meshes and firewalls covering this node declared: [cidr, whose]. */
  private readonly kiloSubnets: Array<[string, string]> = [];

  protected constructor(scope: Construct, id: string, props: K3sNodeProps, role: NodeRole) {
    super(scope, id);
    this.role = role;
    this.host = props.host;
    this.nodeName = props.nodeName ?? id.toLowerCase();
    this.version = props.version ?? K3S_DEFAULT_VERSION;
    this.labels = props.labels ?? {};
    this.taints = props.taints ?? [];
    this.nodePortAddresses = props.nodePortAddresses ?? [...DEFAULT_NODEPORT_ADDRESSES];
    this.decommissioned = (props as { decommission?: boolean }).decommission === true;
    this.node.addValidation({ validate: () => this.validateNode(props) });
    reportStackSecurity(this.stack, { path: this.node.path, host: props.host, server: role === NodeRole.SERVER, optIns: () => this._optIns(props) });
    // At synth: an agent's cluster (its pod network's family) is known once its server is.
    Aspects.of(this).add({ visit: (c) => { if (c === this) this.warnAboutNodePorts(); } });
  }

  /**
   * @internal A KiloMesh (wireguardSubnet) or PeerFirewall (kiloSubnet) covering this node tells it
   * the WireGuard subnet, which none of the node's own addresses may be in.
   */
  public _useKiloSubnet(cidr: string, whose: string): void {
    if (!this.kiloSubnets.some(([c, w]) => c === cidr && w === whose)) this.kiloSubnets.push([cidr, whose]);
  }

  /** @internal The pod network of this node's cluster (the first server's clusterCidr). */
  public get _clusterCidr(): string | undefined {
    return undefined;
  }

  /** The address family of this node's cluster, when its pod network is a literal. */
  private clusterFamily(): "ipv4" | "ipv6" | undefined {
    const cidr = this._clusterCidr;
    return cidr === undefined ? undefined : v.family(cidr);
  }

  /**
   * @internal Documented opt-ins of this node that open Services or turn a protection off, warned
   * about once per stack (reportStackSecurity), naming every node that has them.
   */
  protected _optIns(props: K3sNodeProps): OptInRisk[] {
    if (this.decommissioned) return [];
    const fam = this.clusterFamily();
    const risks: OptInRisk[] = (v.isToken(this.nodePortAddresses) ? [] : this.nodePortAddresses)
      .filter((c) => (c === "0.0.0.0/0" || c === "::/0") && (fam === undefined || v.family(c) === fam))
      .map((c) => ({
        key: `nodePortAddresses ${c}`,
        text: (nodes: string) => `nodePortAddresses: "${c}" serves NodePort Services on every address of ${nodes}, public ones included: ` +
          "kube-proxy accepts that traffic ahead of ufw, so PeerFirewall does not filter it and every NodePort is open to the Internet. " +
          "Leave nodePortAddresses at its default (Kilo's subnet: the mesh only) unless that is what you want",
      }));
    const url = props.install?.scriptUrl;
    if (url !== undefined && props.install?.scriptSha256 === undefined && url !== releaseInstallScriptUrl(this.version)) {
      const shown = v.showShape(v.literalShape(url));
      const who = url.startsWith("file://") ? `whoever can change ${shown} on the host` : `whoever controls ${shown} (or the mirror's TLS)`;
      risks.push({
        key: `install.scriptUrl ${url}`,
        text: (nodes: string) => `install.scriptUrl without install.scriptSha256 on ${nodes}: the install script runs as root on the host, and ${who} controls the node; ` +
          "pin it with install.scriptSha256 (the script's sha256sum), which the host checks before running it",
      });
    }
    return risks;
  }

  /**
   * A nodePortAddresses range (other than a /0, warned about per stack) that holds the node's own
   * public or private address: NodePorts answer there, past ufw. Usually a range meant as "who may
   * connect", which is not what the setting means. Only ranges of the cluster's family count: the
   * other family has no Services.
   */
  private warnAboutNodePorts(): void {
    if (this.decommissioned || v.isToken(this.nodePortAddresses) || !this.host) return;
    const fam = this.clusterFamily();
    const where = `${this.constructor.name} "${this.node.path}"`;
    const own: Array<[string, string | undefined, string]> = [
      ["public", this.host.address, "to the whole Internet"],
      ["private", this.host.privateAddress, "to every machine on that private network"],
    ];
    this.nodePortAddresses.forEach((c, i) => {
      if (c === "0.0.0.0/0" || c === "::/0" || v.checkCidr(c) || (fam !== undefined && v.family(c) !== fam)) return;
      const hit = own.find(([, a]) => a !== undefined && !v.isToken(a) && !v.checkIp(a) && v.overlaps(c, a));
      if (!hit) return;
      const [kind, address, audience] = hit;
      Annotations.of(this).addWarning(`${where}: nodePortAddresses[${i}]: "${c}" covers this node's ${kind} address ${address}, so NodePort Services answer there ${audience}, past ufw. ` +
        "nodePortAddresses chooses which of the node's own addresses serve NodePorts, not who may connect: kube-proxy answers whoever reaches that address. " +
        `Leave out ranges that hold the node's ${kind} address: give the mesh's WireGuard subnet (Kilo's default 10.4.0.0/16, or KiloMesh wireguardSubnet), which serves the mesh only`);
    });
  }

  /** The resource that installs K3s on this node; depend on it to run after the install. */
  public get installation(): ITerraformDependable {
    return this._installStep;
  }

  /**
   * Run `dependency` before K3s is installed on this node (PeerFirewall uses it so the
   * firewall is up before K3s listens). Ordering only: a change to it never re-runs the install.
   */
  public addInstallPrerequisite(dependency: ITerraformDependable): void {
    this.prerequisites.push(dependency);
    if (this._installStep) this._installStep.dependsOn = [...(this._installStep.dependsOn ?? []), dependable(dependency)];
  }

  /** The stack this node's resources live in. */
  public get stack(): TerraformStack {
    return TerraformStack.of(this);
  }

  /** @internal */
  protected _installSettings(props: K3sNodeProps): InstallSettings {
    return {
      role: this.role === NodeRole.SERVER ? "server" : "agent",
      nodeName: this.nodeName,
      version: this.version,
      installScriptUrl: props.install?.scriptUrl ?? releaseInstallScriptUrl(this.version),
      installScriptSha256: props.install?.scriptSha256,
      skipDownload: props.install?.skipDownload ?? false,
      installWireguardTools: props.install?.installWireguardTools ?? true,
      readyTimeoutSeconds: props.install?.readyTimeoutSeconds ?? 300,
    };
  }

  /**
   * A digest of what decides whether K3s restarts on the host: the inputs of the install script's
   * fingerprint on the host (version, installer, role, the config as written there) and the lines
   * that compute it, without the rest of the script's text. Read at apply time (a provisioner's
   * text), so it may hold values unknown at plan; the config's secrets enter only through
   * Terraform's sha256, made nonsensitive so Terraform does not hide the step's output. Empty, so
   * never matched, for a `file://` installer: its content is read on the host each time.
   * @internal
   */
  protected _restartInputs(settings: InstallSettings, config: K3sConfig): string {
    if (settings.installScriptUrl.startsWith("file://")) return "";
    const d = fingerprint([RESTART_DECISION_DIGEST, settings.version, settings.installScriptUrl, settings.installScriptSha256 ?? "",
      String(settings.skipDownload), settings.role, renderK3sConfig(config, CDKTF_LATE_VALUES)].join("\n"));
    return d.values !== undefined ? `${d.text}-${Fn.nonsensitive(d.values)}` : d.text;
  }

  /**
   * Create the membership record and the install step.
   * @param membershipInput key-free data the destroy-time provisioners read from `self.input`
   * @param destroyProvisioners raw destroy-time provisioners for the membership record
   * @param fingerprintConfig what the install's trigger digests, when it must differ from `config`
   * @internal
   */
  protected _wireInstall(
    config: K3sConfig | (() => K3sConfig),
    settings: InstallSettings,
    membershipInput: Record<string, unknown>,
    destroyProvisioners: Array<Record<string, unknown>>,
    membershipDependsOn: ITerraformDependable[],
    fingerprintConfig: K3sConfig | (() => K3sConfig) = config,
    around?: { connection: SSHProvisionerConnection; before: string[]; after: string[] },
  ): void {
    this._membership = new TerraformData(this, "membership", {
      // Only the node's identity replaces it: a replacement runs the destroy-time cleanup.
      triggersReplace: { node_name: this.nodeName, host: this.host.ssh.host ?? this.host.address },
      input: { ...connectionDescription(this.host), ...membershipInput },
      dependsOn: membershipDependsOn.length ? membershipDependsOn : undefined,
    });
    if (destroyProvisioners.length) this._membership.addOverride("provisioner", destroyProvisioners);
    // Terraform drops destroy-time provisioners together with a resource's configuration, so a node
    // is removed in two deploys: first with count = 0 (cleanup runs), then without the construct.
    if (this.decommissioned) this._membership.count = 0;

    // A config given as a function is rendered at synth, once the whole cluster is known (the
    // first server of an HA cluster learns that others join it only after its constructor ran).
    const resolveConfig = (c: K3sConfig | (() => K3sConfig)) => (typeof c === "function" ? c() : c);
    // Values only Terraform knows are encoded by Terraform: YAML-safe whatever they hold.
    const renderYaml = (c: K3sConfig) => terraformLiteral(renderK3sConfig(c, CDKTF_LATE_VALUES, (value) => CDKTF_LATE_VALUES.jsonencode(value)));
    // The programs are shared (one local per stack and text); the digest covers the whole script.
    const scriptParts = installScriptParts(settings, CDKTF_LATE_VALUES);
    const script = joinScript(scriptParts);
    const configYaml = typeof config === "function"
      ? Lazy.stringValue({ produce: () => renderYaml(resolveConfig(config)) })
      : renderYaml(config);
    // A digest only: the config holds tokens, and triggers are stored in state in clear.
    const trigger = typeof fingerprintConfig === "function"
      ? Lazy.anyValue({ produce: () => fingerprint(`${script}\n${renderK3sConfig(resolveConfig(fingerprintConfig), CDKTF_LATE_VALUES)}`) })
      : fingerprint(`${script}\n${renderK3sConfig(fingerprintConfig, CDKTF_LATE_VALUES)}`);
    this._installStep = new TerraformData(this, "install", {
      triggersReplace: trigger,
      dependsOn: [this._membership],
    });
    if (this.decommissioned) this._installStep.count = 0;
    const connection = createTimeConnection(this.host);
    this._installStep.connection = connection;
    // Rolling restarts (agents): a step on a server before the install (slot, cordon, drain) and
    // one after it (Ready, uncordon, slot back), in the same resource. One resource, not three:
    // a step waiting for a slot holds one of Terraform's -parallelism workers, and the node that
    // holds the slot must never need another worker to finish, or the waiters starve it.
    this._installStep.provisioners = [
      ...(around ? [{ type: "remote-exec" as const, inline: around.before, connection: around.connection }] : []),
      { type: "remote-exec", inline: sharedScriptInline(this, stagingScriptParts()) },
      { type: "file", content: configYaml, destination: STAGED_CONFIG },
      { type: "remote-exec", inline: sharedScriptInline(this, scriptParts) },
      ...(around ? [{ type: "remote-exec" as const, inline: around.after, connection: around.connection }] : []),
    ];
    // dependable() gives Terraform's bare `type.name` form; a raw fqn would be "${type.name}", which Terraform rejects.
    for (const p of this.prerequisites) this._installStep.dependsOn = [...(this._installStep.dependsOn ?? []), dependable(p)];
  }

  private validateNode(props: K3sNodeProps): string[] {
    const errors: string[] = [];
    const where = `${this.constructor.name} "${this.node.path}"`;
    const err = (field: string, msg: string | undefined) => { if (msg) errors.push(`${where}: ${field}: ${msg}`); };
    const h = props.host;
    if (!h || h.address === undefined) {
      errors.push(`${where}: host.address is required: the node's public IP or DNS name`);
      return errors;
    }
    err("host.address", v.checkAddress(h.address));
    if (h.privateAddress !== undefined) err("host.privateAddress", v.checkIp(h.privateAddress));
    // Kilo numbers kilo0 from its subnet and routes the whole subnet into the tunnel.
    const subnets: Array<[string, string]> = this.kiloSubnets.length ? this.kiloSubnets : [[DEFAULT_KILO_SUBNET, "Kilo's default"]];
    for (const [field, address] of [["host.address", h.address], ["host.privateAddress", h.privateAddress]] as const) {
      if (address === undefined || v.isToken(address) || v.checkIp(address)) continue;
      const inside = subnets.find(([c]) => !v.isToken(c) && !v.checkCidr(c) && v.overlaps(c, address));
      if (inside) {
        err(field, `${address} is inside the Kilo WireGuard subnet ${inside[0]} (${inside[1]}): Kilo gives the nodes' kilo0 interfaces addresses from it and routes ` +
          "the whole subnet into the tunnel, so this address would clash with a mesh address and traffic to it would go into WireGuard; and nodePortAddresses, " +
          "by default that subnet, would serve NodePorts on it. Give the mesh another subnet (KiloMesh wireguardSubnet and PeerFirewall kiloSubnet, the same range), " +
          "or give the node an address outside it");
      }
    }
    if (h.publicAddressOnInterface === false && !v.isToken(h.address) && v.checkIp(h.address)) {
      err("host.address", `"${h.address}" must be an IP address when publicAddressOnInterface is false (K3s's node-external-ip takes an IP)`);
    }
    if (h.location !== undefined && !v.isToken(h.location)) err("host.location", v.checkLabelValue("location", h.location));
    const s = h.ssh;
    if (!s) {
      errors.push(`${where}: host.ssh is required: give at least { privateKeyPath } or { agent: true }`);
    } else {
      if (s.host !== undefined) err("host.ssh.host", v.checkAddress(s.host));
      if (s.port !== undefined) err("host.ssh.port", v.checkPortNumber(s.port));
      if (s.timeout !== undefined) err("host.ssh.timeout", v.checkDuration(s.timeout));
      if (s.hostKey !== undefined) err("host.ssh.hostKey", v.checkHostKey(s.hostKey));
      if (s.scriptPath !== undefined) err("host.ssh.scriptPath", v.checkScriptPath(s.scriptPath));
      if (s.privateKey !== undefined) {
        err("host.ssh.privateKey", v.checkNotLiteralSecret(s.privateKey,
          "pass a token instead (e.g. a TerraformVariable with sensitive: true, or another resource's key attribute), or use privateKeyPath or the SSH agent"));
      }
      if (s.user !== undefined && !v.isToken(s.user) && !/^[a-z_][a-z0-9_.-]*\$?$/i.test(s.user)) {
        err("host.ssh.user", `"${s.user}" is not a valid login name`);
      }
      if (s.agent === false && s.privateKey === undefined && s.privateKeyPath === undefined) {
        err("host.ssh", "no credentials: agent is false and neither privateKeyPath nor privateKey is set");
      }
      if (s.bastion) {
        err("host.ssh.bastion.host", v.checkAddress(s.bastion.host));
        if (s.bastion.port !== undefined) err("host.ssh.bastion.port", v.checkPortNumber(s.bastion.port));
        if (s.bastion.hostKey !== undefined) err("host.ssh.bastion.hostKey", v.checkHostKey(s.bastion.hostKey));
        // Terraform < 1.16.0 and OpenTofu check the bastion against host_key (hashicorp/terraform#38318):
        // a pinned node behind an unpinned bastion always fails there, and a pinned bastion alone is
        // silently not checked. With both pinned, createTimeConnection emits a shape every version reads right.
        if ((s.hostKey === undefined) !== (s.bastion.hostKey === undefined)) {
          const [set, unset] = s.hostKey === undefined ? ["host.ssh.bastion.hostKey", "host.ssh.hostKey"] : ["host.ssh.hostKey", "host.ssh.bastion.hostKey"];
          err(unset, `${set} is pinned but ${unset} is not; behind a bastion pin both hops or neither: Terraform before 1.16.0 and OpenTofu check the bastion against the node's host_key, so one pinned hop either always fails or is never checked there (fixed in Terraform 1.16.0). Set ${unset} too`);
        }
      }
      if (s.privateKey !== undefined && s.privateKeyPath === undefined && s.agent !== true) {
        err("host.ssh", "privateKey (the key's content) reaches create-time steps only; destroy-time cleanup and the kubeconfig fetch read their connection from state, where no key may go. Also set privateKeyPath, or agent: true with the key loaded in your SSH agent");
      }
    }
    if (s && requireHostKeys(this)) {
      if (s.hostKey === undefined) err("host.ssh.hostKey", `required: the context "${REQUIRE_HOST_KEYS_CONTEXT}" refuses hosts whose SSH key is not pinned (see docs/security.md, "Pinning host keys")`);
      if (s.bastion && s.bastion.hostKey === undefined) err("host.ssh.bastion.hostKey", `required: the context "${REQUIRE_HOST_KEYS_CONTEXT}" refuses bastions whose SSH key is not pinned`);
    }
    err("nodeName", v.checkNodeName(this.nodeName));
    err("version", v.checkK3sVersion(this.version));
    for (const [k, val] of Object.entries(this.labels)) {
      err("labels", v.checkLabelKey(k) ?? v.checkLabelValue(k, val));
    }
    for (const t of this.taints) err("taints", v.checkTaint(t));
    if (props.install?.scriptUrl !== undefined) err("install.scriptUrl", v.checkUrl(props.install.scriptUrl));
    const rt = props.install?.readyTimeoutSeconds;
    // Written into the install script at synth (READY_TIMEOUT=…): a token would be its marker there.
    if (v.isNumberToken(rt)) err("install.readyTimeoutSeconds", v.synthTimeNumber("how long the install waits for K3s", "300"));
    else if (rt !== undefined && (!Number.isInteger(rt) || rt < 10 || rt > 3600)) {
      err("install.readyTimeoutSeconds", `${rt} must be a whole number of seconds between 10 and 3600`);
    }
    if (props.install?.scriptSha256 !== undefined) err("install.scriptSha256", v.checkSha256(props.install.scriptSha256));
    const extra = props.extraConfig ?? {};
    for (const k of Object.keys(extra)) {
      const managed = managedKeyReason(k);
      if (v.isToken(k)) {
        // Keys are written into config.yaml as they are: only values go through jsonencode().
        err("extraConfig", `a key from a Terraform value ("${v.showShape(v.literalShape(k))}") would be written into config.yaml as it is and could name any setting, ` +
          "the managed ones included; write K3s flag names literally");
      } else if (managed) err(`extraConfig["${k}"]`, `this key is managed by cdktf-k3s-kilo (${managed})`);
      else if (k.startsWith("-")) err(`extraConfig["${k}"]`, `write the flag name without leading dashes ("${k.replace(/^-+/, "")}")`);
      else if (!/^[a-z0-9][a-z0-9-]*\+?$/.test(k)) {
        err(`extraConfig[${JSON.stringify(k)}]`, "not a K3s flag name: write it as K3s spells the flag, in lower case with letters, digits and \"-\" (a trailing \"+\" appends), such as \"kubelet-arg\"");
      }
    }
    // K3s turns each value into --key=value (a list into one flag per item); a map has no such form.
    const objectValue = (x: unknown) => x !== null && typeof x === "object" && !Array.isArray(x) && !Tokenization.isResolvable(x);
    for (const [k, value] of Object.entries(extra)) {
      if (v.isToken(k)) continue;
      const items: Array<[string, unknown]> = Array.isArray(value) ? value.map((x, i) => [`extraConfig["${k}"][${i}]`, x]) : [[`extraConfig["${k}"]`, value]];
      for (const [at, x] of items) {
        if (objectValue(x)) err(at, "an object; K3s config values are a string, a number, a boolean or a list of those (a flag given several times is a list)");
        else if (Array.isArray(x)) err(at, "a list inside a list; K3s config values are a string, a number, a boolean or a list of those");
      }
    }
    // kube-proxy's own NodePort setting, in every form that reaches it: the kube-proxy-arg and
    // kube-proxy-arg+ keys (K3s's configfilearg appends), and K3s's arg+= / arg-= forms, which
    // append to or prepend before our value (k3s-io/k3s pkg/util/args.go, GetArgs). Literal parts of
    // a value mixed with tokens count too.
    for (const key of Object.keys(extra).filter((k) => k.replace(/\+$/, "") === "kube-proxy-arg")) {
      const value = extra[key];
      for (const a of Array.isArray(value) ? value : value !== undefined ? [value] : []) {
        if (typeof a !== "string") continue;
        const shape = v.literalShape(a);
        const name = /^-*([^=\s]*)/.exec(shape)![1].replace(/[+-]+$/, "");
        if (name === "nodeport-addresses") err(`extraConfig["${key}"]`, `"${v.showShape(shape)}": use the nodePortAddresses prop`);
        if (name === "config") {
          err(`extraConfig["${key}"]`, `"${v.showShape(shape)}": kube-proxy would take its whole configuration from that file and ignore the flags K3s passes, nodeport-addresses included, ` +
            "so NodePorts could answer on every address; give the settings you need as kube-proxy-arg flags (and NodePort addresses as the nodePortAddresses prop)");
        }
      }
    }
    if (!v.isToken(this.nodePortAddresses)) {
      if (this.nodePortAddresses.length === 0) err("nodePortAddresses", "give at least one CIDR block; [\"0.0.0.0/0\"] serves NodePorts on every address");
      this.nodePortAddresses.forEach((c, i) => err(`nodePortAddresses[${i}]`, v.checkCidr(c)));
      // kube-proxy serves a family it has no range for on every address (kubernetes
      // pkg/proxy/util/nodeport_addresses.go, NewNodePortAddresses: no CIDR of the family → 0.0.0.0/0 or ::/0).
      const fam = this.clusterFamily();
      const literal = this.nodePortAddresses.length > 0 && this.nodePortAddresses.every((c) => !v.isToken(c) && !v.checkCidr(c));
      if (fam !== undefined && literal && !this.nodePortAddresses.some((c) => v.family(c) === fam)) {
        const ipv = fam === "ipv6" ? "IPv6" : "IPv4";
        const given = `${this.nodePortAddresses.join(", ")}${props.nodePortAddresses === undefined ? ", the default" : ""}`;
        err("nodePortAddresses", `the cluster's pod network ${this._clusterCidr} is ${ipv}, but nodePortAddresses (${given}) has no ${ipv} range, ` +
          `and kube-proxy serves NodePorts on every address of a family it has no range for, so they would answer on every ${ipv} address of the node, public ones included, past ufw. ` +
          `Add the ${ipv} range whose node addresses should serve NodePorts (${fam === "ipv6" ? "such as the mesh's IPv6 subnet" : "such as Kilo's subnet 10.4.0.0/16"}), ` +
          `or ${fam === "ipv6" ? "\"::/0\"" : "\"0.0.0.0/0\""} to publish them on purpose`);
      }
    }
    // Node names must be unique across the cluster's stack.
    const others = this.stack.node.findAll().filter((c): c is K3sNode => c instanceof K3sNode && c !== this);
    const dup = others.find((o) => o.nodeName === this.nodeName && !v.isToken(this.nodeName));
    if (dup) err("nodeName", `"${this.nodeName}" is also the node name of ${dup.node.path}; give each node its own nodeName`);
    return errors;
  }
}

/** K3S_RELEASE_INSTALL_SCRIPT_URL for a release tag (a literal or a Terraform token). */
function releaseInstallScriptUrl(version: string): string {
  const tag = v.isToken(version) ? Fn.replace(version, "+", "%2B") : version.replace(/\+/g, "%2B");
  return K3S_RELEASE_INSTALL_SCRIPT_URL.replace("{version}", tag);
}
