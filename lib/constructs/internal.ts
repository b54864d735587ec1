/**
 * Small wiring helpers shared by the constructs. Not exported from the package.
 */
import { createHash } from "crypto";
import { Annotations, Aspects, Fn, Token, IAspect, LocalBackend, TerraformBackend, TerraformLocal, TerraformProvider, TerraformResource, TerraformStack, ITerraformDependable, TerraformResourceLifecycle } from "cdktf";
import { Construct, IConstruct } from "constructs";
import * as localProvider from "@cdktf/provider-local/lib/provider";
import * as randomProvider from "@cdktf/provider-random/lib/provider";
import { Host, REQUIRE_HOST_KEYS_CONTEXT } from "../host/host";
import { reportAtSynth } from "./synth-output";

export interface TerraformDataConfig {
  readonly triggersReplace?: unknown;
  readonly input?: unknown;
  readonly dependsOn?: ITerraformDependable[];
  readonly lifecycle?: TerraformResourceLifecycle;
}

/**
 * Terraform's built-in `terraform_data` (Terraform >= 1.4, OpenTofu alike). cdktf's own
 * DataResource runs `terraform version` during synth, which fails on machines that only
 * synthesize; this one emits the same resource without that check.
 */
export class TerraformData extends TerraformResource {
  private readonly triggersReplace?: unknown;
  private readonly input?: unknown;

  constructor(scope: Construct, id: string, config: TerraformDataConfig = {}) {
    super(scope, id, {
      terraformResourceType: "terraform_data",
      terraformGeneratorMetadata: { providerName: "terraform" },
      dependsOn: config.dependsOn,
      lifecycle: config.lifecycle,
    });
    this.triggersReplace = config.triggersReplace;
    this.input = config.input;
  }

  protected synthesizeAttributes(): { [name: string]: any } {
    return { triggers_replace: this.triggersReplace, input: this.input };
  }

  protected synthesizeHclAttributes(): { [name: string]: any } {
    return {
      triggers_replace: { value: this.triggersReplace, type: "any" },
      input: { value: this.input, type: "any" },
    };
  }
}

type ProviderName = "local" | "random";

/**
 * Version constraints other than the prebuilt bindings' exact pins, where the constructs need a
 * newer release or are tested on one (tools/README.md):
 * - local: the `local_command` data source is in 2.6.0 and later;
 * - kubernetes: the mesh stack's `kubernetes_manifest` and `kubernetes_annotations` are tested
 *   against a real API with provider 3.2.1 (no 2.x release could be built for the tests), and the
 *   bindings were generated from 2.38.0, whose schemas for both are the ones 3.x kept.
 */
const PROVIDER_CONSTRAINTS: Record<string, string> = { local: "~> 2.6", kubernetes: ">= 2.38.0, < 4.0.0" };

/** Apply PROVIDER_CONSTRAINTS[name] to the stack of `scope` (whoever configured the provider). */
export function constrainProvider(scope: IConstruct, name: string): void {
  const constraint = PROVIDER_CONSTRAINTS[name];
  if (constraint) TerraformStack.of(scope).addOverride(`terraform.required_providers.${name}.version`, constraint);
}

/**
 * Make sure the stack has a (default, unaliased) provider for `name`, creating one at stack level
 * when the user has not. Users who configure their own keep it; the version constraint applies either way.
 */
export function ensureProvider(scope: IConstruct, name: ProviderName): void {
  const stack = TerraformStack.of(scope);
  constrainProvider(scope, name);
  const has = stack.node.findAll().some((c) =>
    c instanceof TerraformProvider && c.terraformResourceType === name && c.alias === undefined);
  if (has) return;
  const id = `${name}-provider`;
  if (stack.node.tryFindChild(id)) return;
  switch (name) {
    case "local": new localProvider.LocalProvider(stack, id); break;
    case "random": new randomProvider.RandomProvider(stack, id); break;
  }
}

/**
 * Attach provisioners verbatim. cdktf's types allow `when = "destroy"` only on local-exec, and
 * no `on_failure` or per-provisioner `connection`; a raw override carries all three.
 */
export function setRawProvisioners(resource: TerraformResource, provisioners: Array<Record<string, unknown>>): void {
  resource.addOverride("provisioner", provisioners);
}

const TOKEN_MARKER = /\$\{TfToken\[[A-Z]+\.\d+\]\}/g;

/**
 * The `inline` lines of a remote-exec that runs `parts`: this node's opening and parameters as a
 * literal, then the program as a reference to one local per stack and program text, so a program
 * the same on 200 nodes is in the configuration once. Terraform joins `inline` with newlines, so
 * the host runs exactly joinScript(parts).
 */
export function sharedScriptInline(scope: Construct, parts: { node: string; program: string }): string[] {
  const stack = TerraformStack.of(scope);
  let programs = sharedPrograms.get(stack);
  if (!programs) sharedPrograms.set(stack, programs = new Map());
  let ref = programs.get(parts.program);
  if (ref === undefined) {
    const id = `k3s-script-${createHash("sha256").update(parts.program).digest("hex").slice(0, 12)}`;
    ref = new TerraformLocal(stack, id, terraformLiteral(parts.program)).asString;
    programs.set(parts.program, ref);
  }
  return [terraformLiteral(parts.node), ref];
}

/** Per stack: program text -> the reference to its local (one token, reused by every node). */
const sharedPrograms = new WeakMap<TerraformStack, Map<string, string>>();

/**
 * Make rendered text safe as a Terraform string: `${` and `%{` in shell scripts would otherwise
 * be read as Terraform interpolation and template directives. cdktf's own token markers, which
 * must become interpolations, are left alone.
 */
export function terraformLiteral(text: string): string {
  return text
    .replace(/\$\{(?!TfToken\[)/g, () => "$${")
    .replace(/%\{/g, () => "%%{");
}

/**
 * A digest of rendered text for `triggers_replace`: the literal part hashed at synth, the values
 * only Terraform knows (tokens, secrets among them) hashed by Terraform. Never the text itself.
 */
export function fingerprint(text: string): { [key: string]: string } {
  const markers = text.match(TOKEN_MARKER) ?? [];
  const digest: { [key: string]: string } = {
    text: createHash("sha256").update(text.replace(TOKEN_MARKER, "<value>")).digest("hex"),
  };
  if (markers.length) digest.values = Fn.sha256(Fn.join("\n", markers));
  return digest;
}

/** Whether the strict host-key mode is on for `scope` (context `cdktf-k3s-kilo:requireHostKeys`). */
export function requireHostKeys(scope: IConstruct): boolean {
  const v = scope.node.tryGetContext(REQUIRE_HOST_KEYS_CONTEXT);
  return v === true || v === "true";
}

/**
 * A documented opt-in that opens Services or turns a protection off (or a setting as risky),
 * warned about once per stack: nodes with the same key share one warning that names them all.
 */
export interface OptInRisk {
  /** Nodes whose risks have the same key are named in one warning. */
  readonly key: string;
  /** The warning, given the nodes' paths as `listSome` writes them; it names the field, the risk and the fix. */
  readonly text: (nodes: string) => string;
}

interface NodeEntry {
  readonly path: string;
  readonly host: Host;
  readonly server: boolean;
  /** Read at synth, once the whole cluster is known. */
  readonly optIns?: () => OptInRisk[];
}
const reported = new WeakMap<TerraformStack, NodeEntry[]>();

/** The hosts (nodes and bastions) whose SSH host key Terraform does not check, as readable names. */
export function unpinnedHosts(nodes: readonly NodeEntry[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const n of nodes) {
    const s = n.host?.ssh;
    if (!s) continue;
    // An address from Terraform (a variable, another resource) is named as such, not as cdktf's token text.
    const shown = (a: string) => (Token.isUnresolved(a) ? "address from Terraform" : a);
    if (s.hostKey === undefined) out.push(`${n.path} (${shown(s.host ?? n.host.address)})`);
    if (s.bastion && s.bastion.hostKey === undefined && !seen.has(s.bastion.host)) {
      seen.add(s.bastion.host);
      out.push(`bastion ${shown(s.bastion.host)} (of ${n.path})`);
    }
  }
  return out;
}

/** A list for a message: up to 10 items, then how many more (a 200-node cluster's would fill the screen). */
export function listSome(items: readonly string[], max = 10): string {
  if (items.length <= max + 1) return items.join(", ");
  return `${items.slice(0, max).join(", ")} and ${items.length - max} more`;
}

/**
 * Register a node of `stack`; the first registration adds an aspect that, at synth, tells the user
 * once per stack what Terraform will not protect: hosts whose SSH key is not pinned, cluster
 * secrets kept in a local state file, and the nodes' opt-ins that open Services or turn a
 * protection off (one warning per kind, naming every node that has it).
 */
export function reportStackSecurity(stack: TerraformStack, node: NodeEntry): void {
  const known = reported.get(stack);
  if (known) { known.push(node); return; }
  const nodes: NodeEntry[] = [node];
  reported.set(stack, nodes);
  reportAtSynth(stack);
  const aspect: IAspect = {
    visit(c: IConstruct) {
      if (c !== stack) return;
      const unpinned = unpinnedHosts(nodes);
      if (unpinned.length && !requireHostKeys(stack)) {
        Annotations.of(stack).addWarning(
          `cdktf-k3s-kilo: SSH host keys not pinned, so Terraform does not verify these hosts and whoever intercepts the connection receives the cluster's tokens: ${listSome(unpinned)}. ` +
          `Pin them with host.ssh.hostKey and host.ssh.bastion.hostKey (docs/security.md, "Pinning host keys"); set the context "${REQUIRE_HOST_KEYS_CONTEXT}": true to refuse unpinned hosts.`);
      }
      const backend = stack.node.findAll().find((b) => b instanceof TerraformBackend);
      if (nodes.some((n) => n.server) && (!backend || backend instanceof LocalBackend)) {
        Annotations.of(stack).addWarning(
          "cdktf-k3s-kilo: this stack's state holds the cluster tokens and the admin kubeconfig, and it uses the local backend, " +
          "which writes terraform.<stack>.tfstate with your umask (often world-readable, 0644). Run cdktf with umask 077, " +
          "or configure an encrypted remote backend with access control.");
      }
      const groups = new Map<string, { risk: OptInRisk; paths: string[] }>();
      for (const n of nodes) {
        for (const risk of n.optIns?.() ?? []) {
          const g = groups.get(risk.key) ?? { risk, paths: [] };
          groups.set(risk.key, g);
          if (!g.paths.includes(n.path)) g.paths.push(n.path);
        }
      }
      for (const { risk, paths } of groups.values()) Annotations.of(stack).addWarning(`cdktf-k3s-kilo: ${risk.text(listSome(paths))}`);
    },
  };
  Aspects.of(stack).add(aspect);
}
