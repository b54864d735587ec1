/**
 * Executes a synthesized cdktf stack (cdk.tf.json) the way `terraform apply` / `terraform destroy`
 * would, for the resource types cdktf-k3s-kilo's stacks use:
 *   terraform_data, null_resource, random_password, local_sensitive_file, local_file,
 *   data local_command, outputs.
 *
 * What it reproduces from Terraform:
 *  - a plan: each resource is created, kept, updated in place or replaced (terraform_data
 *    `triggers_replace`, null_resource `triggers`, random_password / local files: any argument change;
 *    an unknown value at plan time forces replacement), resources gone from the configuration are
 *    destroyed — without their destroy-time provisioners, which left with the configuration
 *    (Terraform documents this);
 *  - data sources read at plan time, or deferred to apply when their configuration is unknown or a
 *    dependency (references or depends_on) has changes pending;
 *  - the dependency graph from references and depends_on; destroys in reverse order (using the
 *    dependencies recorded in state) before creates; independent nodes in parallel (10 at a time);
 *    a failed node skips its dependents and the others go on; the apply then fails;
 *  - provisioners: remote-exec `inline` joined with newlines into one script, uploaded to script_path
 *    (default /tmp/terraform_%RAND%.sh), chmod 0777, executed, non-zero exit fails the resource;
 *    file `content` (or `source`) uploaded to `destination` with scp as the login user (mode 0644);
 *    local-exec; `when = "destroy"` (evaluated against `self` from state, not run for tainted objects);
 *    `on_failure = "continue"`; per-provisioner `connection` blocks; a failed create-time provisioner
 *    leaves the resource tainted, to be replaced on the next apply;
 *  - state kept between runs on this object (and optionally in a JSON file).
 *
 * Every command, upload and local command is recorded with its output (never upload contents) so that
 * tests can assert what ran where and that no secret was printed.
 */
import { spawn } from "child_process";
import { createHash, randomBytes, randomInt, randomUUID } from "crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, unlinkSync, chmodSync } from "fs";
import { tmpdir } from "os";
import { dirname, join } from "path";
import { evaluateDeep, ExpressionError, isUnknown, referencesDeep, UNKNOWN, Value } from "./hcl";
import { connectionFromBlock, describe as describeConn, Session, SshClient } from "./ssh";

export interface ResourceState {
  readonly address: string;
  readonly type: string;
  readonly mode: "managed" | "data";
  attrs: Record<string, Value>;
  /** Addresses this object depended on when it was created (for destroy ordering). */
  dependencies: string[];
  tainted?: boolean;
}

export interface TfState {
  resources: Record<string, ResourceState>;
  outputs: Record<string, Value>;
}

/** One thing the harness did on behalf of a provisioner or data source. */
export interface ActionRecord {
  readonly resource: string;
  readonly kind: "connect" | "upload" | "remote-exec" | "local-exec" | "local-command";
  readonly when: "create" | "destroy" | "plan" | "apply";
  /** user@host:port (via bastion) for remote actions. */
  readonly target?: string;
  readonly host?: string;
  /** The remote command, the upload destination, or the local argv. */
  readonly detail: string;
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly startedAt: number;
  readonly endedAt: number;
}

export type Action = "create" | "replace" | "update" | "delete" | "read" | "noop";

export interface RunReport {
  readonly ok: boolean;
  /** Planned action per address (managed resources and data sources). */
  readonly plan: Record<string, Action>;
  /** Addresses whose apply step finished. */
  readonly created: string[];
  readonly destroyed: string[];
  readonly updated: string[];
  readonly errors: Array<{ address: string; message: string }>;
  readonly skipped: string[];
  readonly records: ActionRecord[];
  readonly durationMs: number;
}

export interface RunnerOptions {
  /** Where key files and known_hosts files for ssh are written (0700). @default a new temp dir */
  readonly workDir?: string;
  /** Persist the state here after each run. */
  readonly stateFile?: string;
  /** @default 10 (Terraform's default) */
  readonly parallelism?: number;
  /** Called for every record as it happens. */
  readonly onRecord?: (r: ActionRecord) => void;
}

interface ConfigNode {
  address: string;
  type: string;
  mode: "managed" | "data";
  body: Record<string, unknown>;
  /** Dependencies (addresses) from references in arguments and provisioners, plus depends_on. */
  deps: string[];
}

const MANAGED_TYPES = new Set(["terraform_data", "null_resource", "random_password", "local_sensitive_file", "local_file"]);
const DATA_TYPES = new Set(["local_command"]);
const META = new Set(["depends_on", "provisioner", "connection", "lifecycle", "provider", "//", "count", "for_each"]);

export class TerraformError extends Error {
  constructor(message: string, public readonly report: RunReport) { super(message); }
}

function parseStack(stack: string | object): Record<string, any> {
  return typeof stack === "string" ? JSON.parse(stack) : (stack as Record<string, any>);
}

/** Executes cdktf stacks against real hosts; one instance = one Terraform state. */
export class TerraformRunner {
  public state: TfState = { resources: {}, outputs: {} };
  /** Every record of every run. */
  public readonly records: ActionRecord[] = [];
  /** Values that passed through sensitive() or are generated secrets (random_password results). */
  public readonly secrets = new Set<string>();
  private readonly ssh: SshClient;
  private readonly workDir: string;
  /** The configuration's locals (PeerFirewall's shared converge program is one). */
  private locals: Record<string, unknown> = {};

  constructor(private readonly opts: RunnerOptions = {}) {
    this.workDir = opts.workDir ?? mkdtempSync(join(tmpdir(), "cdktf-tf-"));
    mkdirSync(this.workDir, { recursive: true, mode: 0o700 });
    chmodSync(this.workDir, 0o700);
    this.ssh = new SshClient(join(this.workDir, "ssh"));
    if (opts.stateFile && existsSync(opts.stateFile)) this.state = JSON.parse(readFileSync(opts.stateFile, "utf8"), reviveUnknown);
  }

  /** Remove key files and the work dir (only if this runner made it). */
  public dispose(): void {
    rmSync(join(this.workDir, "ssh"), { recursive: true, force: true });
    if (!this.opts.workDir) rmSync(this.workDir, { recursive: true, force: true });
  }

  /** A managed resource's or data source's attributes from state. */
  public attrs(address: string): Record<string, Value> {
    const r = this.state.resources[address];
    if (!r) throw new Error(`${address} is not in state (have: ${Object.keys(this.state.resources).join(", ")})`);
    return r.attrs;
  }

  /** `terraform state rm`: forget addresses without touching the hosts. */
  public forget(addresses: string[]): void {
    for (const a of addresses) {
      if (!this.state.resources[a]) throw new Error(`${a} is not in state`);
      delete this.state.resources[a];
    }
  }

  /** `terraform apply`; throws TerraformError when anything failed. */
  public async apply(stack: string | object): Promise<RunReport> {
    const report = await this.run(parseStack(stack), { destroy: false });
    if (!report.ok) throw new TerraformError(`apply failed:\n${report.errors.map((e) => `  ${e.address}: ${e.message}`).join("\n")}`, report);
    return report;
  }

  /** `terraform apply` that returns the report even when it failed. */
  public tryApply(stack: string | object): Promise<RunReport> {
    return this.run(parseStack(stack), { destroy: false });
  }

  /**
   * `terraform destroy` (with the configuration, so destroy-time provisioners run). With `targets`,
   * like `-target`: those addresses and everything that depends on them.
   */
  public async destroy(stack: string | object, targets?: string[]): Promise<RunReport> {
    const report = await this.run(parseStack(stack), { destroy: true, targets });
    if (!report.ok) throw new TerraformError(`destroy failed:\n${report.errors.map((e) => `  ${e.address}: ${e.message}`).join("\n")}`, report);
    return report;
  }

  public tryDestroy(stack: string | object, targets?: string[]): Promise<RunReport> {
    return this.run(parseStack(stack), { destroy: true, targets });
  }

  // ---------------------------------------------------------------- configuration

  private configNodes(cfg: Record<string, any>): Map<string, ConfigNode> {
    const nodes = new Map<string, ConfigNode>();
    for (const [type, byName] of Object.entries<Record<string, any>>(cfg.resource ?? {})) {
      if (!MANAGED_TYPES.has(type)) throw new Error(`resource type ${type} is not supported by this harness`);
      for (const [name, body] of Object.entries<Record<string, unknown>>(byName)) nodes.set(`${type}.${name}`, { address: `${type}.${name}`, type, mode: "managed", body, deps: [] });
    }
    for (const [type, byName] of Object.entries<Record<string, any>>(cfg.data ?? {})) {
      if (!DATA_TYPES.has(type)) throw new Error(`data source type ${type} is not supported by this harness`);
      for (const [name, body] of Object.entries<Record<string, unknown>>(byName)) nodes.set(`data.${type}.${name}`, { address: `data.${type}.${name}`, type, mode: "data", body, deps: [] });
    }
    for (const k of Object.keys(cfg)) {
      if (!["resource", "data", "output", "provider", "terraform", "//", "locals"].includes(k)) throw new Error(`top-level block "${k}" is not supported by this harness`);
    }
    this.locals = cfg.locals ?? {};
    for (const n of nodes.values()) {
      for (const k of ["count", "for_each"]) if (k in n.body) throw new Error(`${n.address}: ${k} is not supported by this harness`);
      const lc = n.body.lifecycle as Record<string, unknown> | undefined;
      if (lc && lc.create_before_destroy) throw new Error(`${n.address}: create_before_destroy is not supported by this harness`);
      const deps = new Set<string>();
      for (const d of (n.body.depends_on as string[] | undefined) ?? []) {
        const a = d.replace(/^\$\{(.*)\}$/, "$1");
        if (!nodes.has(a)) throw new Error(`${n.address}: depends_on ${d}: no such resource`);
        deps.add(a);
      }
      const scan: unknown[] = [];
      for (const [k, v] of Object.entries(n.body)) if (!["depends_on", "//", "lifecycle", "provider"].includes(k)) scan.push(v);
      for (const ref of referencesDeep(scan)) {
        if (ref[0] === "local") {
          if (!(String(ref[1]) in this.locals)) throw new Error(`${n.address}: reference to undeclared local.${ref[1]}`);
          continue;
        }
        const a = this.refAddress(ref, n.address);
        if (a === "self") continue;
        if (!nodes.has(a)) throw new Error(`${n.address}: reference to undeclared ${a}`);
        deps.add(a);
      }
      n.deps = [...deps];
    }
    return nodes;
  }

  /** The address a reference path points at ("self" for self). */
  private refAddress(ref: string[], where: string): string {
    const [root] = ref;
    if (root === "self") return "self";
    if (root === "data") {
      if (ref.length < 3) throw new ExpressionError(`${where}: incomplete reference ${ref.join(".")}`);
      return `data.${ref[1]}.${ref[2]}`;
    }
    if (MANAGED_TYPES.has(root)) {
      if (ref.length < 2) throw new ExpressionError(`${where}: incomplete reference ${ref.join(".")}`);
      return `${root}.${ref[1]}`;
    }
    throw new ExpressionError(`${where}: reference ${ref.join(".")} is not supported by this harness (var, local, module, path, count, each … are not)`);
  }

  // ---------------------------------------------------------------- evaluation

  private evalIn(value: unknown, known: (address: string) => Record<string, Value> | typeof UNKNOWN, where: string,
    self?: Record<string, Value>): Value {
    try {
      return evaluateDeep(value, {
        resolve: (path) => {
          const names = path.map((p) => (typeof p === "string" ? p : String(p)));
          let rest: Array<string | Value>;
          let obj: Record<string, Value> | typeof UNKNOWN;
          if (names[0] === "self") {
            if (!self) throw new ExpressionError(`${where}: self is only available in provisioners and connection blocks`);
            obj = self; rest = path.slice(1);
          } else if (names[0] === "local") {
            if (!(names[1] in this.locals)) throw new ExpressionError(`${where}: no local named ${names[1]}`);
            return this.evalIn(this.locals[names[1]], known, `${where} (local.${names[1]})`);
          } else {
            const a = this.refAddress(names, where);
            obj = known(a);
            rest = path.slice(a.startsWith("data.") ? 3 : 2);
          }
          let v: Value = obj;
          for (const k of rest) {
            if (v === UNKNOWN) return UNKNOWN;
            if (Array.isArray(v)) v = v[Number(k)];
            else if (v && typeof v === "object") {
              const key = String(k);
              if (!(key in v)) throw new ExpressionError(`${where}: ${names.join(".")}: no attribute "${key}"`);
              v = (v as Record<string, Value>)[key];
            } else throw new ExpressionError(`${where}: ${names.join(".")}: cannot read "${String(k)}" of ${JSON.stringify(v)}`);
          }
          return v ?? null;
        },
        onSensitive: (v) => this.addSecret(v),
      });
    } catch (e) {
      if (e instanceof ExpressionError && !e.message.startsWith(where)) throw new ExpressionError(`${where}: ${e.message}`);
      throw e;
    }
  }

  private addSecret(v: Value): void {
    if (typeof v === "string" && v.length >= 8) this.secrets.add(v);
    else if (v && typeof v === "object") for (const x of Object.values(v)) this.addSecret(x as Value);
  }

  /** Arguments of a resource (everything but meta-arguments). */
  private args(n: ConfigNode): Record<string, unknown> {
    const a: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(n.body)) if (!META.has(k)) a[k] = v;
    return a;
  }

  // ---------------------------------------------------------------- the run

  private async run(cfg: Record<string, any>, o: { destroy: boolean; targets?: string[] }): Promise<RunReport> {
    const t0 = Date.now();
    const nodes = this.configNodes(cfg);
    const records: ActionRecord[] = [];
    const errors: Array<{ address: string; message: string }> = [];
    const plan: Record<string, Action> = {};
    const planned = new Map<string, Record<string, Value> | typeof UNKNOWN>();
    const state = this.state.resources;

    // Which addresses are in play for a (targeted) destroy.
    let destroySet: Set<string> | undefined;
    if (o.destroy) {
      destroySet = new Set(Object.keys(state).filter((a) => state[a].mode === "managed"));
      if (o.targets) {
        const want = new Set<string>(o.targets);
        for (const t of o.targets) if (!state[t] && !nodes.has(t)) throw new Error(`target ${t} is neither in state nor in the configuration`);
        let grew = true;
        while (grew) {
          grew = false;
          for (const r of Object.values(state)) {
            if (!want.has(r.address) && r.dependencies.some((d) => want.has(d))) { want.add(r.address); grew = true; }
          }
        }
        destroySet = new Set([...destroySet].filter((a) => want.has(a)));
      }
    }

    // ---- plan: evaluate in dependency order.
    const order = topo([...nodes.values()]);
    const known = (a: string) => {
      const v = planned.get(a);
      if (v === undefined) throw new Error(`internal: ${a} evaluated before planning`);
      return v;
    };
    const pending = new Set<string>(); // addresses with changes this run
    const deferred = new Set<string>();
    if (!o.destroy) {
      for (const n of order) {
        const s = state[n.address];
        if (n.mode === "data") {
          const cfgVal = this.evalIn(this.args(n), known, n.address) as Record<string, Value>;
          const depsPending = n.deps.some((d) => pending.has(d) || deferred.has(d));
          if (isUnknown(cfgVal) || depsPending) {
            deferred.add(n.address);
            plan[n.address] = "read";
            planned.set(n.address, UNKNOWN);
          } else {
            const attrs = await this.readData(n, cfgVal, "plan", records);
            if (attrs instanceof Error) { errors.push({ address: n.address, message: attrs.message }); planned.set(n.address, UNKNOWN); deferred.add(n.address); plan[n.address] = "read"; continue; }
            state[n.address] = { address: n.address, type: n.type, mode: "data", attrs, dependencies: n.deps };
            planned.set(n.address, attrs);
            plan[n.address] = "noop";
          }
          continue;
        }
        const args = this.evalIn(this.args(n), known, n.address) as Record<string, Value>;
        const action: Action = !s ? "create" : s.tainted ? "replace" : this.compare(n, args, s.attrs);
        plan[n.address] = action;
        if (action === "noop") planned.set(n.address, s!.attrs);
        else if (action === "update") { planned.set(n.address, { ...s!.attrs, ...this.plannedAttrs(n, args) }); pending.add(n.address); }
        else { planned.set(n.address, this.plannedAttrs(n, args)); pending.add(n.address); }
      }
      for (const a of Object.keys(state)) {
        if (!nodes.has(a)) { plan[a] = "delete"; if (state[a].mode === "data") delete state[a]; }
      }
      if (errors.length) return this.finish(t0, plan, [], [], [], errors, [], records);
    } else {
      for (const a of destroySet!) plan[a] = "delete";
    }

    // ---- apply graph.
    type Step = { id: string; address: string; kind: "destroy" | "create" | "update" | "read"; after: string[] };
    const steps = new Map<string, Step>();
    const destroyIds = (a: string) => `destroy:${a}`;
    for (const [a, act] of Object.entries(plan)) {
      if (act === "delete" || act === "replace") {
        if (!state[a] || state[a].mode !== "managed") continue;
        steps.set(destroyIds(a), { id: destroyIds(a), address: a, kind: "destroy", after: [] });
      }
    }
    // A destroy waits for the destroys of everything that depended on it.
    for (const st of steps.values()) {
      for (const r of Object.values(state)) {
        if (r.dependencies.includes(st.address) && steps.has(destroyIds(r.address))) st.after.push(destroyIds(r.address));
      }
    }
    const allDestroys = [...steps.keys()];
    for (const [a, act] of Object.entries(plan)) {
      if (act === "create" || act === "replace" || act === "update" || (act === "read" && deferred.has(a))) {
        const n = nodes.get(a)!;
        const kind = act === "read" ? "read" : act === "update" ? "update" : "create";
        steps.set(`apply:${a}`, { id: `apply:${a}`, address: a, kind, after: [...allDestroys] });
      }
    }
    for (const st of steps.values()) {
      if (st.kind === "destroy") continue;
      for (const d of nodes.get(st.address)!.deps) if (steps.has(`apply:${d}`)) st.after.push(`apply:${d}`);
    }

    const created: string[] = [];
    const destroyed: string[] = [];
    const updated: string[] = [];
    const skipped: string[] = [];
    const done = new Set<string>();
    const failed = new Set<string>();
    const live = (a: string): Record<string, Value> => {
      const r = state[a];
      if (!r) throw new Error(`${a} has no value: it failed or was not created`);
      return r.attrs;
    };

    const exec = async (st: Step): Promise<void> => {
      const n = nodes.get(st.address);
      if (st.kind === "destroy") {
        const s = state[st.address];
        const provs = !o.destroy && !n ? [] : provisionersOf(n?.body).filter((p) => p.when === "destroy");
        if (!s.tainted) {
          for (const p of provs) await this.provision(st.address, p, n!, s.attrs, live, "destroy", records);
        }
        this.deleteResource(s);
        delete state[st.address];
        destroyed.push(st.address);
        return;
      }
      if (!n) throw new Error(`internal: no configuration for ${st.address}`);
      const args = this.evalIn(this.args(n), live, n.address) as Record<string, Value>;
      if (isUnknown(args)) throw new Error(`${n.address}: configuration still unknown at apply`);
      if (st.kind === "read") {
        const attrs = await this.readData(n, args, "apply", records);
        if (attrs instanceof Error) throw attrs;
        state[n.address] = { address: n.address, type: n.type, mode: "data", attrs, dependencies: n.deps };
        created.push(n.address);
        return;
      }
      if (st.kind === "update") {
        state[n.address].attrs = { ...state[n.address].attrs, ...this.createAttrs(n, args, state[n.address].attrs) };
        updated.push(n.address);
        return;
      }
      const attrs = this.createAttrs(n, args);
      state[n.address] = { address: n.address, type: n.type, mode: "managed", attrs, dependencies: n.deps };
      try {
        for (const p of provisionersOf(n.body).filter((x) => x.when === "create")) {
          await this.provision(n.address, p, n, attrs, live, "create", records);
        }
      } catch (e) {
        state[n.address].tainted = true;
        throw e;
      }
      created.push(n.address);
    };

    // ---- run the graph, `parallelism` at a time.
    const limit = this.opts.parallelism ?? 10;
    const running = new Map<string, Promise<void>>();
    const waiting = new Set(steps.keys());
    await new Promise<void>((resolveAll) => {
      const pump = () => {
        for (const id of [...waiting]) {
          const st = steps.get(id)!;
          if (st.after.some((x) => failed.has(x))) {
            waiting.delete(id); failed.add(id); skipped.push(st.address);
            continue;
          }
        }
        for (const id of [...waiting]) {
          if (running.size >= limit) break;
          const st = steps.get(id)!;
          if (!st.after.every((x) => done.has(x))) continue;
          waiting.delete(id);
          const p = exec(st).then(
            () => { done.add(id); },
            (e: Error) => { failed.add(id); errors.push({ address: st.address, message: e.message }); },
          ).finally(() => { running.delete(id); pump(); });
          running.set(id, p);
        }
        if (running.size === 0) {
          // Anything still waiting can never run (a failed dependency) — or a cycle.
          for (const id of waiting) { skipped.push(steps.get(id)!.address); }
          waiting.clear();
          resolveAll();
        }
      };
      pump();
    });

    if (!o.destroy) {
      // Outputs (sensitive ones too; Terraform keeps them in state).
      const outs: Record<string, Value> = {};
      for (const [name, body] of Object.entries<Record<string, unknown>>(cfg.output ?? {})) {
        try {
          const v = this.evalIn(body.value, (a) => (state[a] ? state[a].attrs : UNKNOWN), `output.${name}`);
          if (body.sensitive) this.addSecret(v);
          outs[name] = v;
        } catch (e) {
          if (!errors.length) errors.push({ address: `output.${name}`, message: (e as Error).message });
        }
      }
      this.state.outputs = outs;
    } else if (!o.targets && errors.length === 0) {
      this.state.outputs = {};
      for (const a of Object.keys(state)) if (state[a].mode === "data") delete state[a];
    }
    return this.finish(t0, plan, created, destroyed, updated, errors, skipped, records);
  }

  private finish(t0: number, plan: Record<string, Action>, created: string[], destroyed: string[], updated: string[],
    errors: Array<{ address: string; message: string }>, skipped: string[], records: ActionRecord[]): RunReport {
    if (this.opts.stateFile) {
      mkdirSync(dirname(this.opts.stateFile), { recursive: true });
      writeFileSync(this.opts.stateFile, JSON.stringify(this.state, (_k, v) => (v === UNKNOWN ? { __unknown: true } : v), 2), { mode: 0o600 });
    }
    return { ok: errors.length === 0, plan, created, destroyed, updated, errors, skipped, records, durationMs: Date.now() - t0 };
  }

  // ---------------------------------------------------------------- resource types

  /** What the plan compares; returns replace when a replacing argument changed. */
  private compare(n: ConfigNode, args: Record<string, Value>, old: Record<string, Value>): Action {
    const same = (a: Value | undefined, b: Value | undefined) => !isUnknown(a as Value) && JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
    switch (n.type) {
      case "terraform_data":
        if (!same(args.triggers_replace, old.triggers_replace)) return "replace";
        return same(args.input, old.input) ? "noop" : "update";
      case "null_resource":
        return same(args.triggers, old.triggers) ? "noop" : "replace";
      default:
        for (const [k, v] of Object.entries(args)) if (!same(v, old[k])) return "replace";
        return "noop";
    }
  }

  /** Attributes as known at plan time for a resource that will be created or replaced. */
  private plannedAttrs(n: ConfigNode, args: Record<string, Value>): Record<string, Value> {
    switch (n.type) {
      case "terraform_data": return { ...args, id: UNKNOWN, output: args.input ?? null };
      case "null_resource": return { ...args, id: UNKNOWN };
      case "random_password": return { ...args, id: "none", result: UNKNOWN, bcrypt_hash: UNKNOWN };
      default: return { ...args, id: UNKNOWN };
    }
  }

  /** Create a resource's object (before its provisioners run). */
  private createAttrs(n: ConfigNode, args: Record<string, Value>, old?: Record<string, Value>): Record<string, Value> {
    switch (n.type) {
      case "terraform_data": return { ...args, id: old?.id ?? randomUUID(), output: args.input ?? null };
      case "null_resource": return { ...args, id: String(randomInt(1, 2 ** 47)) };
      case "random_password": {
        const result = randomPassword(args);
        this.secrets.add(result);
        return { ...args, id: "none", result, bcrypt_hash: "(not computed by the harness)" };
      }
      case "local_sensitive_file":
      case "local_file": {
        const filename = String(args.filename);
        const content = args.content === undefined || args.content === null ? "" : String(args.content);
        if (n.type === "local_sensitive_file") this.addSecret(content);
        const dirMode = parseInt(String(args.directory_permission ?? "0700"), 8);
        mkdirSync(dirname(filename), { recursive: true, mode: dirMode });
        const mode = parseInt(String(args.file_permission ?? (n.type === "local_sensitive_file" ? "0700" : "0777")), 8);
        writeFileSync(filename, content, { mode });
        chmodSync(filename, mode);
        return { ...args, id: createHash("sha1").update(content).digest("hex") };
      }
      default: throw new Error(`${n.address}: cannot create ${n.type}`);
    }
  }

  private deleteResource(s: ResourceState): void {
    if ((s.type === "local_sensitive_file" || s.type === "local_file") && typeof s.attrs.filename === "string") {
      try { unlinkSync(s.attrs.filename); } catch { /* already gone */ }
    }
  }

  private async readData(n: ConfigNode, args: Record<string, Value>, when: "plan" | "apply", records: ActionRecord[]): Promise<Record<string, Value> | Error> {
    if (n.type !== "local_command") return new Error(`${n.address}: unsupported data source`);
    const known = new Set(["command", "arguments", "stdin", "working_directory", "allow_non_zero_exit_code"]);
    for (const k of Object.keys(args)) if (!known.has(k)) return new Error(`${n.address}: argument ${k} is not supported by this harness`);
    const argv = [String(args.command), ...((args.arguments as Value[] | null) ?? []).map(String)];
    const r = await runLocal(argv, args.stdin === undefined || args.stdin === null ? undefined : String(args.stdin),
      args.working_directory ? String(args.working_directory) : undefined, 300000);
    this.record(records, { resource: n.address, kind: "local-command", when, detail: argv.join(" "), ...r });
    if (r.code !== 0 && args.allow_non_zero_exit_code !== true) {
      return new Error(`${n.address}: command ${argv.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
    }
    return { ...args, stdout: r.stdout, stderr: r.stderr, exit_code: r.code };
  }

  // ---------------------------------------------------------------- provisioners

  private async provision(address: string, p: Provisioner, n: ConfigNode, self: Record<string, Value>,
    live: (a: string) => Record<string, Value>, when: "create" | "destroy", records: ActionRecord[]): Promise<void> {
    const where = `${address} ${p.type} provisioner${when === "destroy" ? " (destroy-time)" : ""}`;
    try {
      if (when === "destroy") {
        // Terraform: destroy-time provisioners may refer to self only.
        for (const ref of referencesDeep([p.body, p.connection ?? n.body.connection])) {
          if (ref[0] !== "self") throw new ExpressionError(`destroy-time provisioners may only reference self, not ${ref.join(".")}`);
        }
      }
      const body = this.evalIn(p.body, live, where, self) as Record<string, Value>;
      if (p.type === "local-exec") {
        const known = new Set(["command", "interpreter", "environment", "working_dir", "quiet"]);
        for (const k of Object.keys(body)) if (!known.has(k)) throw new Error(`argument ${k} is not supported by this harness`);
        const interp = (body.interpreter as string[] | undefined) ?? ["/bin/sh", "-c"];
        const r = await runLocal([...interp, String(body.command)], undefined, body.working_dir ? String(body.working_dir) : undefined, 900000,
          (body.environment as Record<string, string> | undefined) ?? {});
        this.record(records, { resource: address, kind: "local-exec", when, detail: String(body.command), ...r });
        if (r.code !== 0) throw new Error(`local-exec: exit status ${r.code}: ${r.stderr.trim()}`);
        return;
      }
      const connBlock = p.connection ?? n.body.connection;
      if (!connBlock) throw new Error("no connection block");
      const connVal = this.evalIn(connBlock, live, where, self) as Record<string, Value>;
      const conn = connectionFromBlock(connVal as Record<string, unknown>);
      const target = describeConn(conn);
      const host = conn.host;
      const t = Date.now();
      let session: Session;
      try {
        session = await this.ssh.connect(conn);
      } catch (e) {
        this.record(records, { resource: address, kind: "connect", when, target, host, detail: "connect", code: 255, stdout: "", stderr: (e as Error).message, startedAt: t, endedAt: Date.now() });
        throw e;
      }
      try {
        await this.runProvisioner(address, p, body, session, target, host, when, records);
      } finally {
        await session.close();
      }
    } catch (e) {
      if (p.onFailure === "continue") {
        this.record(records, { resource: address, kind: p.type === "local-exec" ? "local-exec" : "remote-exec", when, detail: `on_failure=continue: ${(e as Error).message}`, code: -1, stdout: "", stderr: "", startedAt: Date.now(), endedAt: Date.now() });
        return;
      }
      throw new Error(`${where}: ${(e as Error).message}`);
    }
  }

  private async runProvisioner(address: string, p: Provisioner, body: Record<string, Value>, session: Session, target: string, host: string,
    when: "create" | "destroy", records: ActionRecord[]): Promise<void> {
    if (p.type === "file") {
      const known = new Set(["content", "source", "destination"]);
      for (const k of Object.keys(body)) if (!known.has(k)) throw new Error(`argument ${k} is not supported by this harness`);
      if (body.source !== undefined) throw new Error("file provisioner source is not supported by this harness (use content)");
      const dest = String(body.destination);
      const content = String(body.content ?? "");
      const s0 = Date.now();
      const r = await session.upload(dest, content);
      this.record(records, { resource: address, kind: "upload", when, target, host, detail: `${dest} (${Buffer.byteLength(content)} bytes, sha256 ${createHash("sha256").update(content).digest("hex").slice(0, 12)})`, code: r.code, stdout: r.stdout.replace(/\0/g, ""), stderr: r.stderr, startedAt: s0, endedAt: Date.now() });
      if (r.code !== 0) throw new Error(`upload of ${dest} to ${target} failed: ${r.stderr.trim()}`);
      return;
    }
    // remote-exec: inline joined into one script, uploaded to script_path, chmod 0777, run.
    const known = new Set(["inline", "script", "scripts"]);
    for (const k of Object.keys(body)) if (!known.has(k)) throw new Error(`argument ${k} is not supported by this harness`);
    if (!body.inline) throw new Error("remote-exec script/scripts are not supported by this harness (use inline)");
    const script = [...(body.inline as Value[]).map(String), ""].join("\n");
    const path = SshClient.scriptPath(session.connection);
    const s0 = Date.now();
    const up = await session.upload(path, script);
    this.record(records, { resource: address, kind: "upload", when, target, host, detail: `${path} (script)`, code: up.code, stdout: "", stderr: up.stderr, startedAt: s0, endedAt: Date.now() });
    if (up.code !== 0) throw new Error(`uploading the script to ${target} failed: ${up.stderr.trim()}`);
    const ch = await session.run(`chmod 0777 ${path}`);
    if (ch.code !== 0) throw new Error(`chmod of the script on ${target} failed: ${ch.stderr.trim()}`);
    const s1 = Date.now();
    const r = await session.run(path);
    this.record(records, { resource: address, kind: "remote-exec", when, target, host, detail: path, code: r.code, stdout: r.stdout, stderr: r.stderr, startedAt: s1, endedAt: Date.now() });
    if (r.code !== 0) {
      const tail = (r.stderr.trim() || r.stdout.trim()).split("\n").slice(-5).join("\n");
      throw new Error(`error executing "${path}" on ${target}: Process exited with status ${r.code}\n${tail}`);
    }
  }

  private record(records: ActionRecord[], r: Omit<ActionRecord, "startedAt" | "endedAt"> & Partial<ActionRecord>): void {
    const full: ActionRecord = { startedAt: Date.now(), endedAt: Date.now(), ...r } as ActionRecord;
    records.push(full);
    this.records.push(full);
    this.opts.onRecord?.(full);
  }
}

interface Provisioner {
  type: "remote-exec" | "file" | "local-exec";
  when: "create" | "destroy";
  onFailure: "fail" | "continue";
  connection?: Record<string, unknown>;
  body: Record<string, unknown>;
}

function provisionersOf(body: Record<string, unknown> | undefined): Provisioner[] {
  const raw = (body?.provisioner as Array<Record<string, Record<string, unknown>>> | undefined) ?? [];
  return raw.map((entry) => {
    const keys = Object.keys(entry);
    if (keys.length !== 1) throw new Error(`malformed provisioner ${JSON.stringify(keys)}`);
    const type = keys[0];
    if (!["remote-exec", "file", "local-exec"].includes(type)) throw new Error(`provisioner ${type} is not supported by this harness`);
    const { when, on_failure: onFailure, connection, ...rest } = entry[type] as Record<string, unknown>;
    if (when !== undefined && when !== "destroy" && when !== "create") throw new Error(`provisioner when = ${String(when)} is not supported`);
    if (onFailure !== undefined && onFailure !== "fail" && onFailure !== "continue") throw new Error(`provisioner on_failure = ${String(onFailure)} is not supported`);
    return {
      type: type as Provisioner["type"],
      when: when === "destroy" ? "destroy" : "create",
      onFailure: onFailure === "continue" ? "continue" : "fail",
      connection: connection as Record<string, unknown> | undefined,
      body: rest,
    };
  });
}

function topo(nodes: ConfigNode[]): ConfigNode[] {
  const by = new Map(nodes.map((n) => [n.address, n]));
  const out: ConfigNode[] = [];
  const state = new Map<string, number>();
  const visit = (n: ConfigNode, path: string[]) => {
    const s = state.get(n.address);
    if (s === 2) return;
    if (s === 1) throw new Error(`dependency cycle: ${[...path, n.address].join(" -> ")}`);
    state.set(n.address, 1);
    for (const d of n.deps) visit(by.get(d)!, [...path, n.address]);
    state.set(n.address, 2);
    out.push(n);
  };
  for (const n of nodes) visit(n, []);
  return out;
}

function randomPassword(args: Record<string, Value>): string {
  const length = Number(args.length ?? 0);
  if (!length) throw new Error("random_password: length is required");
  const upper = args.upper !== false ? "ABCDEFGHIJKLMNOPQRSTUVWXYZ" : "";
  const lower = args.lower !== false ? "abcdefghijklmnopqrstuvwxyz" : "";
  const numeric = args.numeric !== false && args.number !== false ? "0123456789" : "";
  const special = args.special !== false ? String(args.override_special ?? "!@#$%&*()-_=+[]{}<>:?") : "";
  const set = upper + lower + numeric + special;
  const bytes = randomBytes(length);
  let s = "";
  for (let i = 0; i < length; i++) s += set[bytes[i] % set.length];
  return s;
}

function runLocal(argv: string[], stdin: string | undefined, cwd: string | undefined, timeoutMs: number, env: Record<string, string> = {}):
  Promise<{ code: number; stdout: string; stderr: string; startedAt: number; endedAt: number }> {
  const startedAt = Date.now();
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { cwd, env: { ...process.env, ...env }, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code) => { clearTimeout(timer); resolve({ code: code ?? 1, stdout, stderr, startedAt, endedAt: Date.now() }); });
    child.on("error", (e) => { clearTimeout(timer); resolve({ code: 127, stdout, stderr: stderr + e.message, startedAt, endedAt: Date.now() }); });
    child.stdin.on("error", () => { /* ignore */ });
    child.stdin.end(stdin ?? "");
  });
}

function reviveUnknown(_k: string, v: unknown): unknown {
  return v && typeof v === "object" && (v as { __unknown?: boolean }).__unknown === true ? UNKNOWN : v;
}
