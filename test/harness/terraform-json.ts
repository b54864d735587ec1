/**
 * Reading what the real `terraform` did, for the real-host tests: `apply`/`destroy` with `-json`
 * (Terraform's machine-readable UI, one JSON object per line) through the wrapper in
 * terraform-cli.ts, and the state through `terraform show -json`. Nothing here touches the
 * configuration: the wrapper runs Terraform on cdk.tf.json as synthesized.
 *
 * Message types and fields are those of Terraform's views/json package (internal/command/views/json
 * in hashicorp/terraform: planned_change, apply_start/complete/errored, provision_start/progress/
 * complete/errored, diagnostic), each with an `@timestamp` in RFC 3339 with microseconds.
 */
import { readFileSync } from "fs";
import { join } from "path";
import { TerraformCli, TfResult } from "./terraform-cli";

export interface TfEvent {
  readonly type: string;
  /** Milliseconds since the epoch (the hosts share this machine's clock). */
  readonly at: number;
  /** The resource instance address, when the message is about one. */
  readonly address?: string;
  /** planned_change / apply_*: create, update, delete, replace, read, noop … */
  readonly action?: string;
  /** provision_*: the provisioner type (remote-exec, file, local-exec). */
  readonly provisioner?: string;
  /** provision_progress: one line of the provisioner's output. */
  readonly output?: string;
  readonly message: string;
  readonly raw: any;
}

export interface TfDiagnostic {
  readonly severity: string;
  readonly summary: string;
  readonly detail: string;
  readonly address?: string;
}

export interface JsonRun {
  readonly result: TfResult;
  readonly ok: boolean;
  readonly events: TfEvent[];
  /** Planned action per resource instance address (from planned_change; absent = no change). */
  readonly plan: Record<string, string>;
  /** Addresses whose apply finished (apply_complete), in order, with the hook's action. */
  readonly completed: Array<{ address: string; action: string; at: number }>;
  /** Addresses for which any provisioner started (provision_start). */
  readonly provisioned: string[];
  readonly errors: TfDiagnostic[];
}

export interface JsonRunOptions {
  readonly targets?: readonly string[];
  /** -replace=<address> each: re-create (and so re-provision) these resources. */
  readonly replace?: readonly string[];
  readonly parallelism?: number;
  /** Throw when Terraform fails. @default true */
  readonly check?: boolean;
  readonly timeoutMs?: number;
}

/** Parse Terraform's -json UI stream. Lines that are not JSON (there should be none) are kept as "text". */
export function parseEvents(stdout: string): TfEvent[] {
  const out: TfEvent[] = [];
  for (const line of stdout.split("\n")) {
    if (!line.trim()) continue;
    let m: any;
    try { m = JSON.parse(line); } catch { out.push({ type: "text", at: 0, message: line, raw: line }); continue; }
    const hook = m.hook ?? m.change ?? {};
    out.push({
      type: m.type,
      at: Date.parse(m["@timestamp"]),
      address: hook.resource?.addr ?? m.diagnostic?.address,
      action: hook.action,
      provisioner: hook.provisioner,
      output: hook.output,
      message: m["@message"] ?? "",
      raw: m,
    });
  }
  return out;
}

function summarize(result: TfResult): JsonRun {
  const events = parseEvents(result.stdout);
  const plan: Record<string, string> = {};
  for (const e of events) if (e.type === "planned_change" && e.address) plan[e.address] = e.action!;
  return {
    result,
    ok: result.code === 0,
    events,
    plan,
    completed: events.filter((e) => e.type === "apply_complete").map((e) => ({ address: e.address!, action: e.action!, at: e.at })),
    provisioned: [...new Set(events.filter((e) => e.type === "provision_start").map((e) => e.address!))],
    errors: events.filter((e) => e.type === "diagnostic" && e.raw.diagnostic?.severity === "error").map((e) => ({
      severity: "error", summary: e.raw.diagnostic.summary ?? "", detail: e.raw.diagnostic.detail ?? "", address: e.raw.diagnostic.address,
    })),
  };
}

function runArgs(base: string[], o: JsonRunOptions): string[] {
  const args = [...base, "-json", "-auto-approve", "-input=false", "-lock-timeout=60s"];
  if (o.parallelism !== undefined) args.push(`-parallelism=${o.parallelism}`);
  for (const t of o.targets ?? []) args.push(`-target=${t}`);
  for (const r of o.replace ?? []) args.push(`-replace=${r}`);
  return args;
}

/** `terraform apply -json -auto-approve`, parsed. */
export async function applyJson(tf: TerraformCli, o: JsonRunOptions = {}): Promise<JsonRun> {
  const r = summarize(await tf.run(runArgs(["apply"], o), { check: o.check, timeoutMs: o.timeoutMs }));
  return r;
}

/** `terraform destroy -json -auto-approve`, parsed. */
export async function destroyJson(tf: TerraformCli, o: JsonRunOptions = {}): Promise<JsonRun> {
  return summarize(await tf.run(runArgs(["destroy"], o), { check: o.check, timeoutMs: o.timeoutMs }));
}

/** A resource instance in `terraform show -json` state. */
export interface StateResource {
  readonly address: string;
  readonly type: string;
  readonly mode: string;
  readonly values: Record<string, any>;
  readonly tainted: boolean;
}

/** Every resource instance in the state (root module), by address. */
export async function stateResources(tf: TerraformCli): Promise<Record<string, StateResource>> {
  const s = await tf.showJson();
  const out: Record<string, StateResource> = {};
  for (const r of s?.values?.root_module?.resources ?? []) {
    out[r.address] = { address: r.address, type: r.type, mode: r.mode, values: r.values ?? {}, tainted: r.tainted === true };
  }
  return out;
}

/** Resource addresses (`type.name`) in a synthesized stack, from its cdk.tf.json. */
export function stackAddresses(stackDir: string): string[] {
  const cfg = JSON.parse(readFileSync(join(stackDir, "cdk.tf.json"), "utf8"));
  const all: string[] = [];
  for (const [type, byName] of Object.entries<Record<string, unknown>>(cfg.resource ?? {})) for (const n of Object.keys(byName)) all.push(`${type}.${n}`);
  return all;
}
