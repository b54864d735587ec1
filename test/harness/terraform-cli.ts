/**
 * A thin wrapper around the real `terraform` binary (1.11.4, from the machine image) for tests.
 * It runs Terraform in a synthesized stack directory (cdktf.out/stacks/<name>) on cdk.tf.json exactly
 * as cdktf wrote it: it never reads back, rewrites or adds configuration. Providers come from the
 * per-run filesystem mirror (test/harness/terraform-env.ts), so `init` works offline.
 *
 * State: cdktf's default local backend writes `terraform.<stack>.tfstate` into the working directory
 * *of the synthesizing process*, as an absolute path in the JSON (cdktf/lib/backends/local-backend.js).
 * Tests that apply must therefore synthesize with their cwd in a temp dir (see `synthesizeIn`) or
 * give the stack a LocalBackend path of their own; `statePath` tells where the state will be, and
 * the wrapper refuses to apply/destroy a stack whose state would land inside this repository.
 *
 * Every method resolves to { code, stdout, stderr, durationMs } and by default throws a
 * TerraformError when the exit code is not an expected one (0; 0 or 2 for a plan with
 * -detailed-exitcode); `check: false` returns any code. Variables go through TF_VAR_* in the child's
 * environment, never on the command line (they may be secrets).
 */
import { spawn } from "child_process";
import { accessSync, constants, existsSync, readFileSync } from "fs";
import { delimiter, join, relative, resolve, isAbsolute } from "path";
import { terraformEnv } from "./terraform-env";

const REPO_ROOT = resolve(__dirname, "..", "..");

export interface TfResult {
  /** Exit code (null never: a timeout or signal throws). */
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly durationMs: number;
  /** The arguments after `terraform`. */
  readonly args: readonly string[];
}

export interface TfRunOptions {
  /** Extra environment for this command (e.g. { TF_LOG: "trace" }). */
  readonly env?: Record<string, string>;
  /** Kill Terraform (and its providers) after this long and throw. @default the wrapper's timeoutMs */
  readonly timeoutMs?: number;
  /** Throw a TerraformError when the exit code is not expected. @default true */
  readonly check?: boolean;
}

export interface TfVarOptions extends TfRunOptions {
  /** Input variables, passed as TF_VAR_<name> in the environment. */
  readonly vars?: Record<string, string>;
}

export interface TfPlanOptions extends TfVarOptions {
  /** -detailed-exitcode: 0 no changes, 2 changes (both accepted when check is on). @default false */
  readonly detailedExitcode?: boolean;
  /** -refresh=false when false. @default true */
  readonly refresh?: boolean;
  /** -out=<file> (relative to the stack directory or absolute). */
  readonly out?: string;
  /** -destroy. @default false */
  readonly destroy?: boolean;
  /** -target=<address> each. */
  readonly targets?: readonly string[];
}

export interface TfApplyOptions extends TfVarOptions {
  /** -parallelism=<n>. @default Terraform's (10) */
  readonly parallelism?: number;
  /** -target=<address> each. */
  readonly targets?: readonly string[];
  /** Apply a saved plan (from plan({ out })) instead of planning again. */
  readonly planFile?: string;
  /** -refresh=false when false. @default true */
  readonly refresh?: boolean;
}

export interface TfDestroyOptions extends TfVarOptions {
  readonly parallelism?: number;
  readonly targets?: readonly string[];
}

export interface TerraformCliOptions {
  /** Extra environment for every command. */
  readonly env?: Record<string, string>;
  /** Per-command timeout. @default 600000 (10 min) */
  readonly timeoutMs?: number;
  /** The CLI to run instead of `terraform` from PATH, e.g. OpenTofu's `tofu` (same commands and flags). */
  readonly binary?: string;
}

export class TerraformError extends Error {
  constructor(readonly result: TfResult, readonly stackDir: string, why: string) {
    super(`terraform ${result.args.join(" ")} in ${stackDir}: ${why}\n` +
      `--- stdout (last 4000 chars) ---\n${result.stdout.slice(-4000)}\n--- stderr (last 4000 chars) ---\n${result.stderr.slice(-4000)}`);
    this.name = "TerraformError";
  }
}

export const TERRAFORM_MISSING =
  "the tests need the terraform binary (1.11.4) from the machine image on PATH; `terraform` was not found";

/** Path of `terraform` on PATH; throws TERRAFORM_MISSING when absent. */
export function terraformBinary(env: NodeJS.ProcessEnv = process.env): string {
  for (const d of (env.PATH ?? "").split(delimiter)) {
    if (!d) continue;
    const p = join(d, "terraform");
    try { accessSync(p, constants.X_OK); return p; } catch { /* next */ }
  }
  throw new Error(TERRAFORM_MISSING);
}

/**
 * Run `fn` (which synthesizes) with the process's cwd set to `dir`, so cdktf's default local backend
 * puts each stack's state at <dir>/terraform.<stack>.tfstate. Synchronous on purpose: nothing else in
 * this process runs while the cwd is changed.
 */
export function synthesizeIn<T>(dir: string, fn: () => T): T {
  const before = process.cwd();
  process.chdir(dir);
  try { return fn(); } finally { process.chdir(before); }
}

export class TerraformCli {
  readonly binary: string;
  private readonly env: Record<string, string>;
  private readonly timeoutMs: number;

  /** @param stackDir a synthesized stack directory holding cdk.tf.json */
  constructor(readonly stackDir: string, options: TerraformCliOptions = {}) {
    this.binary = options.binary ?? terraformBinary();
    this.env = { ...terraformEnv().env, ...(options.env ?? {}) };
    this.timeoutMs = options.timeoutMs ?? 600_000;
  }

  /** The local backend's state file as synthesized (absolute), or undefined for another backend. */
  get statePath(): string | undefined {
    const file = join(this.stackDir, "cdk.tf.json");
    const json = existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : undefined;
    const path = json?.terraform?.backend?.local?.path;
    if (typeof path !== "string") return json?.terraform?.backend ? undefined : resolve(this.stackDir, "terraform.tfstate");
    return isAbsolute(path) ? path : resolve(this.stackDir, path);
  }

  /** `terraform init -input=false`: providers from the test mirror only; writes .terraform.lock.hcl. */
  init(o: TfRunOptions = {}): Promise<TfResult> {
    return this.run(["init", "-input=false", "-no-color"], o);
  }

  validate(o: TfRunOptions = {}): Promise<TfResult> {
    return this.run(["validate", "-no-color"], o);
  }

  plan(o: TfPlanOptions = {}): Promise<TfResult> {
    const args = ["plan", "-input=false", "-no-color", "-lock-timeout=60s"];
    if (o.detailedExitcode) args.push("-detailed-exitcode");
    if (o.refresh === false) args.push("-refresh=false");
    if (o.destroy) args.push("-destroy");
    if (o.out) args.push(`-out=${o.out}`);
    for (const t of o.targets ?? []) args.push(`-target=${t}`);
    return this.run(args, o, o.detailedExitcode ? [0, 2] : [0]);
  }

  apply(o: TfApplyOptions = {}): Promise<TfResult> {
    this.guardState();
    const args = ["apply", "-input=false", "-no-color", "-lock-timeout=60s"];
    if (!o.planFile) args.push("-auto-approve");
    if (o.parallelism !== undefined) args.push(`-parallelism=${o.parallelism}`);
    if (o.refresh === false) args.push("-refresh=false");
    for (const t of o.targets ?? []) args.push(`-target=${t}`);
    if (o.planFile) args.push(o.planFile);
    return this.run(args, o);
  }

  destroy(o: TfDestroyOptions = {}): Promise<TfResult> {
    this.guardState();
    const args = ["destroy", "-auto-approve", "-input=false", "-no-color", "-lock-timeout=60s"];
    if (o.parallelism !== undefined) args.push(`-parallelism=${o.parallelism}`);
    for (const t of o.targets ?? []) args.push(`-target=${t}`);
    return this.run(args, o);
  }

  /** `terraform show -json [planFile]`, parsed. */
  async showJson(planFile?: string, o: TfRunOptions = {}): Promise<any> {
    const r = await this.run(["show", "-json", "-no-color", ...(planFile ? [planFile] : [])], o);
    return JSON.parse(r.stdout);
  }

  /** `terraform output -json`, parsed: { name: { value, type, sensitive } }. */
  async outputJson(o: TfRunOptions = {}): Promise<Record<string, { value: any; type: any; sensitive: boolean }>> {
    const r = await this.run(["output", "-json", "-no-color"], o);
    return JSON.parse(r.stdout);
  }

  /** Any other command, e.g. run(["state", "list"]). */
  run(args: readonly string[], o: TfVarOptions = {}, expected: readonly number[] = [0]): Promise<TfResult> {
    const env: Record<string, string> = { ...this.env, ...(o.env ?? {}) };
    for (const [k, v] of Object.entries(o.vars ?? {})) env[`TF_VAR_${k}`] = v;
    const timeoutMs = o.timeoutMs ?? this.timeoutMs;
    const start = Date.now();
    return new Promise((resolveP, reject) => {
      // Own process group, so a timeout kills Terraform and every provider process it started.
      const child = spawn(this.binary, args, { cwd: this.stackDir, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on("data", (b: Buffer) => out.push(b));
      child.stderr.on("data", (b: Buffer) => err.push(b));
      let timedOut = false;
      const kill = (sig: NodeJS.Signals) => { try { process.kill(-child.pid!, sig); } catch { /* gone */ } };
      const timer = setTimeout(() => {
        timedOut = true;
        kill("SIGTERM");
        setTimeout(() => kill("SIGKILL"), 5000).unref();
      }, timeoutMs);
      child.on("error", (e) => { clearTimeout(timer); reject(e); });
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        const result: TfResult = {
          code: code ?? -1,
          stdout: Buffer.concat(out).toString("utf8"),
          stderr: Buffer.concat(err).toString("utf8"),
          durationMs: Date.now() - start,
          args,
        };
        if (timedOut) return reject(new TerraformError(result, this.stackDir, `timed out after ${timeoutMs} ms`));
        if (code === null) return reject(new TerraformError(result, this.stackDir, `killed by ${signal}`));
        if (o.check !== false && !expected.includes(code)) {
          return reject(new TerraformError(result, this.stackDir, `exit code ${code}, expected ${expected.join(" or ")}`));
        }
        resolveP(result);
      });
    });
  }

  private guardState(): void {
    const p = this.statePath;
    if (p && !relative(REPO_ROOT, p).startsWith("..")) {
      throw new Error(`refusing to run terraform on ${this.stackDir}: its state would be written to ${p}, inside the repository. ` +
        "Synthesize with the cwd in a temp dir (synthesizeIn(dir, () => app.synth())) or give the stack a LocalBackend path.");
    }
  }
}
