/**
 * Reads synthesized stacks (manifest.json + cdk.tf.json) and computes, from the JSON alone:
 * the dependency graph (references + depends_on, stacks ordered by the manifest's dependencies),
 * its critical path in stages, which resources carry provisioners, firewall rules and ufw commands
 * counted from the rendered scripts, SSH sessions per node computed from the provisioners, and a
 * plan-like diff of two synths (which resources Terraform would replace, update, add or remove).
 *
 * No cdktf and no library imports: this is what a reviewer can check against the JSON by hand.
 */
import { readFileSync, statSync } from "fs";
import { join } from "path";

export interface StackJson {
  readonly name: string;
  /** Stacks that must be deployed before this one (manifest.json). */
  readonly dependencies: string[];
  readonly config: Record<string, any>;
  /** Size of cdk.tf.json in bytes. */
  readonly bytes: number;
}

export interface SynthJson {
  readonly stacks: StackJson[];
}

/** Read an app's synthesized output directory. */
export function readSynth(outdir: string): SynthJson {
  const manifest = JSON.parse(readFileSync(join(outdir, "manifest.json"), "utf8"));
  const stacks: StackJson[] = [];
  for (const [name, s] of Object.entries<any>(manifest.stacks)) {
    const path = join(outdir, s.synthesizedStackPath);
    stacks.push({ name, dependencies: s.dependencies ?? [], config: JSON.parse(readFileSync(path, "utf8")), bytes: statSync(path).size });
  }
  return { stacks: orderStacks(stacks) };
}

/** Stacks in deploy order (dependencies first). */
export function orderStacks(stacks: StackJson[]): StackJson[] {
  const out: StackJson[] = [];
  const seen = new Set<string>();
  const visit = (s: StackJson) => {
    if (seen.has(s.name)) return;
    seen.add(s.name);
    for (const d of s.dependencies) { const ds = stacks.find((x) => x.name === d); if (ds) visit(ds); }
    out.push(s);
  };
  stacks.forEach(visit);
  return out;
}

// ------------------------------------------------------------------ the graph

export interface GraphNode {
  /** `<stack>:<address>`, e.g. `cluster:terraform_data.server_install_ABCD1234`. */
  readonly id: string;
  readonly stack: string;
  /** Terraform address (`data.` prefix for data sources). */
  readonly address: string;
  readonly type: string;
  readonly mode: "managed" | "data";
  readonly body: Record<string, any>;
  /** Ids of the nodes this one waits for. */
  readonly deps: string[];
  /** Create-time provisioners (remote-exec / file: one SSH connection each). */
  readonly createProvisioners: number;
  /** The address SSH connections of the create-time provisioners go to. */
  readonly sshHost?: string;
  /** Per create-time provisioner, the address it connects to (a provisioner may have its own connection). */
  readonly sshHosts?: string[];
  /** The construct path (cdktf metadata). */
  readonly path: string;
}

const META_KEYS = new Set(["//", "depends_on", "provisioner", "connection", "lifecycle", "provider", "count", "for_each"]);
const ADDRESS = /\b(data\.)?([a-z][a-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_-]*)/g;

function strings(v: unknown, out: string[] = []): string[] {
  if (typeof v === "string") out.push(v);
  else if (Array.isArray(v)) v.forEach((x) => strings(x, out));
  else if (v && typeof v === "object") Object.values(v).forEach((x) => strings(x, out));
  return out;
}

/** Addresses among `known` that `v` mentions (references inside expressions, or depends_on entries). */
function mentioned(v: unknown, known: Set<string>): string[] {
  const found = new Set<string>();
  for (const s of strings(v)) {
    if (!s.includes(".")) continue;
    for (const m of s.matchAll(ADDRESS)) {
      const a = `${m[1] ?? ""}${m[2]}.${m[3]}`;
      if (known.has(a)) found.add(a);
    }
  }
  return [...found];
}

function createTimeProvisioners(body: Record<string, any>): Array<Record<string, any>> {
  const list = (body.provisioner ?? []) as Array<Record<string, Record<string, any>>>;
  return list.flatMap((p) => Object.entries(p)
    .filter(([type, b]) => (type === "remote-exec" || type === "file") && b.when !== "destroy")
    .map(([, b]) => b));
}

/** The literal host an SSH connection goes to (and its bastion, which also sees a connection). */
function connectionHost(conn: Record<string, any> | undefined): string | undefined {
  const h = conn?.host;
  return typeof h === "string" && !h.includes("${") ? h : undefined;
}

/** Every resource and data source of every stack, with its dependencies. */
export function buildGraph(synth: SynthJson): GraphNode[] {
  const nodes: GraphNode[] = [];
  const stackNodes = new Map<string, string[]>();
  for (const st of synth.stacks) {
    const entries: Array<{ address: string; type: string; mode: "managed" | "data"; body: Record<string, any> }> = [];
    for (const [type, byName] of Object.entries<Record<string, any>>(st.config.resource ?? {})) {
      // `count = 0` (a decommissioned agent): no instance, as if absent from the configuration —
      // except that its destroy-time provisioners still run when Terraform destroys it.
      for (const [name, body] of Object.entries(byName)) if (body.count !== 0) entries.push({ address: `${type}.${name}`, type, mode: "managed", body });
    }
    for (const [type, byName] of Object.entries<Record<string, any>>(st.config.data ?? {})) {
      for (const [name, body] of Object.entries(byName)) entries.push({ address: `data.${type}.${name}`, type, mode: "data", body });
    }
    const known = new Set(entries.map((e) => e.address));
    // A provider's configuration can refer to data sources (the mesh's kubernetes provider reads the
    // cluster's outputs through terraform_remote_state): its resources wait for them.
    const providerDeps = new Map<string, string[]>();
    for (const [ptype, confs] of Object.entries<any>(st.config.provider ?? {})) {
      for (const conf of (Array.isArray(confs) ? confs : [confs])) {
        providerDeps.set(conf.alias ? `${ptype}.${conf.alias}` : ptype, mentioned(conf, known));
      }
    }
    // Every stack this one depends on must be completely applied first.
    const upstream = st.dependencies.flatMap((d) => stackNodes.get(d) ?? []);
    const ids: string[] = [];
    for (const e of entries) {
      const providerKey = typeof e.body.provider === "string" ? e.body.provider : e.type.split("_")[0];
      const deps = new Set([
        ...mentioned(Object.fromEntries(Object.entries(e.body).filter(([k]) => k !== "//")), known),
        ...(providerDeps.get(providerKey) ?? []),
      ].filter((a) => a !== e.address).map((a) => `${st.name}:${a}`));
      for (const u of upstream) deps.add(u);
      const provs = createTimeProvisioners(e.body);
      // The resource's own host: its connection block (the first provisioner's when it has none).
      const sshHost = provs.length ? (connectionHost(e.body.connection) ?? connectionHost(provs[0].connection)) : undefined;
      // Where each provisioner connects: its own connection block, else the resource's (an agent's
      // install drains and uncordons it on the first server).
      const sshHosts = provs.map((p) => connectionHost(p.connection) ?? connectionHost(e.body.connection)).filter((x): x is string => x !== undefined);
      nodes.push({
        id: `${st.name}:${e.address}`, stack: st.name, address: e.address, type: e.type, mode: e.mode, body: e.body,
        deps: [...deps], createProvisioners: provs.length, sshHost, sshHosts, path: e.body["//"]?.metadata?.path ?? e.address,
      });
      ids.push(`${st.name}:${e.address}`);
    }
    stackNodes.set(st.name, [...upstream, ...ids]);
  }
  return nodes;
}

/**
 * The kubeconfig fetch: a local_command data source that runs ssh to the server on every plan. Its
 * program is the stack's copy (assets/…/fetch-kubeconfig.cjs); older stacks ran the package's .js.
 */
export function isSshDataSource(n: GraphNode): boolean {
  return n.mode === "data" && n.type === "local_command" && strings(n.body.arguments).some((a) => /fetch-kubeconfig\.c?js$/.test(a));
}

/** A step of the deploy that does remote work: SSH provisioners, the SSH fetch, Kubernetes objects. */
export function isWork(n: GraphNode): boolean {
  return n.createProvisioners > 0 || isSshDataSource(n) || (n.mode === "managed" && n.type.startsWith("kubernetes_"));
}

/** What a stage of work holds, by kind. */
export function kindOf(n: GraphNode): string {
  if (n.type === "terraform_data" && n.path.includes("/firewall/")) return "firewall";
  if (n.type === "terraform_data" && n.path.endsWith("/install")) return /\/server(-\d+)?\/install$/.test(n.path) ? "server install" : "agent install";
  if (isSshDataSource(n)) return "kubeconfig fetch";
  if (n.type.startsWith("kubernetes_")) return "k8s object";
  return n.createProvisioners > 0 ? "provisioner" : n.type;
}

export interface Stage {
  /** 1-based stage number. */
  readonly index: number;
  /** Work steps that can run in parallel at this stage (Terraform's -parallelism caps them). */
  readonly width: number;
  /** Of which carry SSH provisioners (or run ssh, for the fetch). */
  readonly ssh: number;
  /** Counts by kind, e.g. { firewall: 6 }. */
  readonly kinds: Record<string, number>;
}

export interface CriticalPath {
  /** Longest chain of graph nodes of any kind (random_password, remote state reads included). */
  readonly depth: number;
  /** Longest chain counting only work steps (isWork): the number of sequential stages. */
  readonly stages: Stage[];
  /** The work steps on one longest chain, by construct path. */
  readonly chain: string[];
}

/**
 * Stage of a work step = the number of work steps on the longest chain ending at it (itself
 * included). Everything with the same stage can run at the same time.
 */
export function criticalPath(nodes: GraphNode[]): CriticalPath {
  const by = new Map(nodes.map((n) => [n.id, n]));
  const depth = new Map<string, number>();
  const stage = new Map<string, number>();
  const prev = new Map<string, string | undefined>();
  const state = new Map<string, number>();
  const visit = (id: string): void => {
    if (state.get(id) === 2) return;
    if (state.get(id) === 1) throw new Error(`dependency cycle at ${id}`);
    state.set(id, 1);
    const n = by.get(id)!;
    let d = 0; let s = 0; let p: string | undefined;
    for (const dep of n.deps) {
      visit(dep);
      d = Math.max(d, depth.get(dep)!);
      const sd = stage.get(dep)!;
      if (p === undefined || sd > s) { s = sd; p = dep; }
    }
    depth.set(id, d + 1);
    stage.set(id, s + (isWork(n) ? 1 : 0));
    prev.set(id, p);
    state.set(id, 2);
  };
  nodes.forEach((n) => visit(n.id));
  const stages: Stage[] = [];
  const maxStage = Math.max(0, ...stage.values());
  for (let i = 1; i <= maxStage; i++) {
    const here = nodes.filter((n) => isWork(n) && stage.get(n.id) === i);
    const kinds: Record<string, number> = {};
    for (const n of here) kinds[kindOf(n)] = (kinds[kindOf(n)] ?? 0) + 1;
    stages.push({ index: i, width: here.length, ssh: here.filter((n) => n.createProvisioners > 0 || isSshDataSource(n)).length, kinds });
  }
  // One longest chain, walking back from a node of the last stage.
  const chain: string[] = [];
  let cur = nodes.filter((n) => stage.get(n.id) === maxStage).map((n) => n.id).sort()[0];
  while (cur) {
    const n = by.get(cur)!;
    if (isWork(n)) chain.unshift(`${n.stack}:${n.path}`);
    cur = prev.get(cur)!;
  }
  return { depth: Math.max(0, ...depth.values()), stages, chain };
}

// ------------------------------------------------------------------ firewall and SSH counts

export interface FirewallCounts {
  /** Rules per node (the `want` lines of its converge script), by host address. */
  readonly rulesPerNode: Map<string, number>;
  readonly totalRules: number;
  /** ufw invocations per node when the script runs on a host with no rules of ours yet. */
  readonly ufwFreshPerNode: Map<string, number>;
  /** ufw invocations per node when the script runs again with nothing to change. */
  readonly ufwConvergedPerNode: Map<string, number>;
}

/** Count rules and ufw invocations from the rendered firewall scripts in the JSON. */
export function firewallCounts(nodes: GraphNode[], synth?: SynthJson): FirewallCounts {
  // The batched converge's shared Terraform local holds the cluster's address list; a node's data
  // names the indices it leaves out ({"shared": [...]}).
  const sharedLength = (stack: string): number => {
    const locals = synth?.stacks.find((st) => st.name === stack)?.config.locals ?? {};
    for (const v of Object.values<unknown>(locals)) {
      const m = typeof v === "string" ? /CDKTF_K3S_KILO_SOURCES'\n(\[.*\])\n/.exec(v) : null;
      if (m) return (JSON.parse(m[1]) as unknown[]).length;
    }
    throw new Error(`firewallCounts: no shared source list among the locals of stack ${stack} (pass the synth)`);
  };
  const rulesPerNode = new Map<string, number>();
  const ufwFreshPerNode = new Map<string, number>();
  const ufwConvergedPerNode = new Map<string, number>();
  for (const n of nodes) {
    if (!(n.type === "terraform_data" && n.path.includes("/firewall/"))) continue;
    const script = strings(n.body.provisioner).join("\n");
    const lines = script.split("\n");
    const wants = lines.filter((l) => /^want /.test(l)).length;
    const defaults = lines.filter((l) => /^set_default /.test(l)).length;
    // Top-level ufw calls that always run: `ufw show added`, `ufw status` (before and after enabling).
    const always = lines.filter((l) => /^(added=\$\(ufw show added\)|if ! ufw status|ufw status )/.test(l)).length;
    const enable = lines.filter((l) => /ufw --force enable/.test(l)).length;
    const host = n.sshHost ?? n.path;
    // The batched converge: the shared program is a Terraform local; the node's rules are JSON.
    const data = lines.find((l) => l.startsWith('{"sources":'));
    if (data) {
      const d = JSON.parse(data) as { sources: unknown[]; rules: unknown[][] };
      const count = d.rules.reduce<number>((a, e) => {
        const i = e.findIndex((w) => typeof w === "number");
        if (i < 0) return a + 1;
        const src = d.sources[e[i] as number] as unknown;
        return a + (Array.isArray(src) ? src.length : sharedLength(n.stack) - (src as { shared: number[] }).shared.length);
      }, 0);
      rulesPerNode.set(host, count);
      // One python process; `ufw` itself only for a default that differs (3) and enabling.
      ufwFreshPerNode.set(host, 3 + 1);
      ufwConvergedPerNode.set(host, 0);
      continue;
    }
    rulesPerNode.set(host, wants);
    // Fresh host: every wanted rule is added (one ufw call each), each default may differ, ufw is enabled.
    ufwFreshPerNode.set(host, always + wants + defaults + enable);
    // Converged host: the rules are there (the tag check is a shell `case`), defaults match, ufw active.
    ufwConvergedPerNode.set(host, always);
  }
  return { rulesPerNode, totalRules: [...rulesPerNode.values()].reduce((a, b) => a + b, 0), ufwFreshPerNode, ufwConvergedPerNode };
}

export interface SshCounts {
  /** Per host address: SSH connections of a fresh `cdktf deploy '*'`. */
  readonly fresh: Map<string, number>;
  /** Per host address: SSH connections of a second deploy with no change. */
  readonly rerun: Map<string, number>;
  /** Install steps (K3s installer runs) on the re-run. */
  readonly rerunInstalls: number;
}

function fetchHost(n: GraphNode): string | undefined {
  const m = /"host"\s*=\s*"([^"]+)"/.exec(String(n.body.stdin ?? ""));
  return m?.[1];
}

/**
 * SSH connections per host, computed from the graph: Terraform opens one connection per
 * create-time provisioner (remote-exec uploads its script and runs it over that connection; a
 * file provisioner is another connection). On a fresh deploy every provisioner runs and the
 * kubeconfig fetch is read once, at apply (it depends on the install, so plan defers it). On a
 * no-change re-run no provisioner runs and the fetch is read once, at plan. A bastion would see
 * one more connection per hop; the bench's clusters have none.
 */
export function computedSsh(synth: SynthJson): SshCounts {
  const nodes = buildGraph(synth);
  // A re-run with the same configuration: what the plan of `synth` against its own state does.
  const again = planDiff(synth, synth);
  const fresh = new Map<string, number>();
  const rerun = new Map<string, number>();
  const add = (m: Map<string, number>, h: string | undefined, k: number) => { if (h) m.set(h, (m.get(h) ?? 0) + k); };
  let rerunInstalls = 0;
  for (const n of nodes) {
    const runsAgain = again.get(n.id) === "replace" || again.get(n.id) === "add";
    if (n.createProvisioners > 0) {
      for (const h of n.sshHosts?.length ? n.sshHosts : Array(n.createProvisioners).fill(n.sshHost)) {
        add(fresh, h, 1);
        add(rerun, h, runsAgain ? 1 : 0);
      }
      if (runsAgain && n.type === "terraform_data" && n.path.endsWith("/install")) rerunInstalls++;
    }
    // Read once per run: at apply on a fresh deploy (deferred), at plan on a re-run.
    if (isSshDataSource(n)) { add(fresh, fetchHost(n), 1); add(rerun, fetchHost(n), 1); }
  }
  return { fresh, rerun, rerunInstalls };
}

// ------------------------------------------------------------------ plan-like diff

export type Change = "replace" | "update" | "add" | "remove" | "read-deferred" | "noop";

/** Arguments whose change replaces the resource, by type; absent: any argument (ForceNew). */
const REPLACE_ON: Record<string, string | null> = {
  terraform_data: "triggers_replace",
  // In-place updates: Kubernetes objects (server-side apply), remote state reads.
  kubernetes_manifest: null,
  kubernetes_annotations: null,
};

function argsOf(body: Record<string, any>): Record<string, any> {
  return Object.fromEntries(Object.entries(body).filter(([k]) => !META_KEYS.has(k)));
}

/**
 * What `terraform plan` would do to each resource of `before`'s state given `after`'s
 * configuration, per stack in deploy order. Rules (Terraform's):
 * - absent before / after: add / remove;
 * - terraform_data is replaced when triggers_replace changes, its
 *   other arguments are updated in place; random_password and local files are replaced on any
 *   change; Kubernetes objects are updated in place;
 * - a value is unknown at plan when it comes from a resource being added or replaced, or from a
 *   data source whose read is deferred; an unknown value in a trigger replaces, elsewhere updates;
 * - a data source is read at apply instead of plan (deferred) when a resource in its depends_on
 *   has a change planned, or its arguments hold an unknown value.
 * Cross-stack values (terraform_remote_state) are read after the upstream stack is applied; they
 * count as changed only if the upstream output's expression changed (the bench assumes the
 * kubeconfig's contents survive a K3s upgrade, as K3s keeps its CA and client certificates).
 */
export function planDiff(before: SynthJson, after: SynthJson): Map<string, Change> {
  const b = new Map(buildGraph(before).map((n) => [n.id, n]));
  const a = buildGraph(after);
  const result = new Map<string, Change>();
  const byId = new Map(a.map((n) => [n.id, n]));
  const unknownFrom = (id: string): boolean => {
    const c = result.get(id);
    return c === "add" || c === "replace" || c === "read-deferred";
  };
  const done = new Set<string>();
  const visit = (n: GraphNode): void => {
    if (done.has(n.id)) return;
    done.add(n.id);
    for (const d of n.deps) { const dn = byId.get(d); if (dn) visit(dn); }
    const old = b.get(n.id);
    if (!old) { result.set(n.id, n.mode === "data" ? "read-deferred" : "add"); return; }
    const known = new Set(n.deps.filter((d) => d.startsWith(`${n.stack}:`)).map((d) => d.slice(n.stack.length + 1)));
    const refsUnknown = (v: unknown) => mentioned(v, known).some((addr) => unknownFrom(`${n.stack}:${addr}`));
    if (n.mode === "data") {
      const dependsOn = ((n.body.depends_on ?? []) as string[]).map((d) => `${n.stack}:${d}`);
      const pending = dependsOn.some((d) => { const c = result.get(d); return c !== undefined && c !== "noop"; });
      const changedArgs = JSON.stringify(argsOf(old.body)) !== JSON.stringify(argsOf(n.body));
      result.set(n.id, pending || refsUnknown(argsOf(n.body)) || changedArgs ? "read-deferred" : "noop");
      return;
    }
    const replaceKey = n.type in REPLACE_ON ? REPLACE_ON[n.type] : undefined;
    const args = argsOf(n.body);
    const oldArgs = argsOf(old.body);
    let change: Change = "noop";
    if (replaceKey === undefined) {
      // ForceNew on every argument.
      if (JSON.stringify(oldArgs) !== JSON.stringify(args) || refsUnknown(args)) change = "replace";
    } else if (replaceKey === null) {
      if (JSON.stringify(oldArgs) !== JSON.stringify(args) || refsUnknown(args)) change = "update";
    } else {
      const { [replaceKey]: trig, ...rest } = args;
      const { [replaceKey]: oldTrig, ...oldRest } = oldArgs;
      if (JSON.stringify(trig) !== JSON.stringify(oldTrig) || refsUnknown(trig)) change = "replace";
      else if (JSON.stringify(rest) !== JSON.stringify(oldRest) || refsUnknown(rest)) change = "update";
    }
    result.set(n.id, change);
  };
  a.forEach(visit);
  for (const id of b.keys()) if (!byId.has(id)) result.set(id, b.get(id)!.mode === "data" ? "noop" : "remove");
  return result;
}

export interface ImpactSummary {
  /** Construct paths by change, managed resources only (data reads listed apart). */
  readonly replaced: string[];
  readonly updated: string[];
  readonly added: string[];
  readonly removed: string[];
  readonly deferredReads: string[];
  /** Replaced resources that run a K3s installer. */
  readonly installsReplaced: string[];
  /** Replaced or added resources with create-time provisioners: what actually runs over SSH. */
  readonly provisionersRun: number;
}

export function summarizeImpact(before: SynthJson, after: SynthJson): ImpactSummary {
  const diff = planDiff(before, after);
  const nodes = new Map([...buildGraph(before), ...buildGraph(after)].map((n) => [n.id, n]));
  const pick = (c: Change) => [...diff].filter(([, v]) => v === c).map(([id]) => nodes.get(id)!).sort((x, y) => x.id.localeCompare(y.id));
  const label = (n: GraphNode) => `${n.stack}:${n.path}`;
  const replaced = pick("replace");
  return {
    replaced: replaced.map(label),
    updated: pick("update").map(label),
    added: pick("add").map(label),
    removed: pick("remove").map(label),
    deferredReads: pick("read-deferred").map(label),
    installsReplaced: replaced.filter((n) => n.type === "terraform_data" && n.path.endsWith("/install")).map(label),
    provisionersRun: [...replaced, ...pick("add")].filter((n) => n.createProvisioners > 0).length,
  };
}

/** Group construct paths into a short phrase: "200 firewall, 1 agent install". */
export function describePaths(paths: string[]): string {
  if (paths.length === 0) return "none";
  const groups = new Map<string, number>();
  for (const p of paths) {
    const path = p.slice(p.indexOf(":") + 1);
    const parts = path.split("/");
    let kind: string;
    if (parts[1] === "firewall") kind = "firewall";
    else if (parts[1]?.startsWith("kilo")) kind = `kilo ${parts[parts.length - 1].startsWith("node-") ? "node annotation" : parts[parts.length - 1]}`;
    else kind = `${parts[1]?.startsWith("server") ? "server" : "agent"} ${parts[parts.length - 1]}`;
    groups.set(kind, (groups.get(kind) ?? 0) + 1);
  }
  return [...groups].map(([k, c]) => `${c} ${k}`).join(", ");
}
