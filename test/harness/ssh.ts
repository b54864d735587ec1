/**
 * Terraform's SSH communicator, reproduced with the system OpenSSH client: connect with retries until
 * the connection's `timeout`, upload files with the scp protocol (`scp -vt DIR`, mode 0644, as the login
 * user, exactly like Terraform's communicator), and run commands. Connection settings follow
 * Terraform's `connection` block: host, port, user, private_key, agent, host_key, timeout, script_path,
 * bastion_host/_port/_user/_private_key/_host_key (defaults as Terraform documents them).
 */
import { spawn } from "child_process";
import { createHash, randomBytes, randomInt } from "crypto";
import { mkdirSync, readFileSync, unlinkSync, writeFileSync, existsSync } from "fs";
import { join, posix } from "path";

export interface Connection {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly privateKey?: string;
  readonly agent: boolean;
  readonly hostKey?: string;
  readonly timeoutMs: number;
  readonly scriptPath: string;
  readonly bastion?: {
    readonly host: string;
    readonly port: number;
    readonly user: string;
    readonly privateKey?: string;
    readonly hostKey?: string;
  };
}

/** Go duration ("5m", "10s", "1m30s", "500ms") in milliseconds. */
export function parseDuration(d: string): number {
  if (/^\d+$/.test(d)) throw new Error(`timeout "${d}": a duration needs a unit (s, m, h)`);
  let ms = 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let m: RegExpExecArray | null;
  let consumed = 0;
  while ((m = re.exec(d))) {
    consumed += m[0].length;
    ms += Number(m[1]) * { ms: 1, s: 1000, m: 60000, h: 3600000 }[m[2] as "ms"];
  }
  if (consumed !== d.length || !d) throw new Error(`timeout "${d}" is not a duration`);
  return ms;
}

/** Build a Connection from an evaluated Terraform `connection` block. */
export function connectionFromBlock(c: Record<string, unknown>): Connection {
  const str = (k: string) => (c[k] === undefined || c[k] === null ? undefined : String(c[k]));
  const type = str("type") ?? "ssh";
  if (type !== "ssh") throw new Error(`connection type "${type}" is not supported by this harness`);
  const known = new Set(["type", "host", "port", "user", "private_key", "agent", "host_key", "timeout", "script_path",
    "bastion_host", "bastion_port", "bastion_user", "bastion_private_key", "bastion_host_key", "target_platform"]);
  for (const k of Object.keys(c)) if (!known.has(k)) throw new Error(`connection attribute "${k}" is not supported by this harness`);
  const host = str("host");
  if (!host) throw new Error("connection: host is required");
  const user = str("user") ?? "root";
  const port = Number(str("port") ?? 22);
  const privateKey = str("private_key");
  const agentRaw = str("agent");
  const agent = agentRaw === undefined ? privateKey === undefined : agentRaw === "true";
  const b = str("bastion_host");
  return {
    host, port, user, privateKey, agent,
    hostKey: str("host_key"),
    timeoutMs: parseDuration(str("timeout") ?? "5m"),
    scriptPath: str("script_path") ?? "/tmp/terraform_%RAND%.sh",
    bastion: b ? {
      host: b,
      port: Number(str("bastion_port") ?? port),
      user: str("bastion_user") ?? user,
      privateKey: str("bastion_private_key") ?? privateKey,
      hostKey: str("bastion_host_key"),
    } : undefined,
  };
}

export function describe(c: Connection): string {
  return `${c.user}@${c.host}:${c.port}${c.bastion ? ` via bastion ${c.bastion.user}@${c.bastion.host}:${c.bastion.port}` : ""}`;
}

export interface RunResult { code: number; stdout: string; stderr: string }

function q(s: string): string {
  return `'${s.replace(/'/g, "'\\''")}'`;
}

/** One provisioner's SSH connection: commands and uploads as sessions over it. */
export class Session {
  constructor(private readonly client: SshClient, public readonly connection: Connection, private readonly sock: string) {}

  private args(): string[] {
    return [...this.client.sshArgs(this.connection, 10), "-S", this.sock, "-o", "ControlMaster=no"];
  }

  /** Run a command (as the login user's shell would). */
  public run(command: string, timeoutMs = 15 * 60000): Promise<RunResult> {
    return this.client._exec([...this.args(), command], undefined, timeoutMs);
  }

  /** Upload `content` to `destination` with the scp protocol, as Terraform's communicator does. */
  public upload(destination: string, content: Buffer | string, mode = "0644"): Promise<RunResult> {
    const data = Buffer.isBuffer(content) ? content : Buffer.from(content, "utf8");
    const header = Buffer.from(`C${mode} ${data.length} ${posix.basename(destination)}\n`, "utf8");
    const payload = Buffer.concat([header, data, Buffer.from([0])]);
    return this.client._exec([...this.args(), `scp -vt ${posix.dirname(destination)}`], payload, 120000);
  }

  /** Close the connection. */
  public async close(): Promise<void> {
    await this.client._exec([...this.args(), "-O", "exit"], undefined, 10000);
    try { unlinkSync(this.sock); } catch { /* gone */ }
  }
}

/** Runs ssh/scp for Terraform-like provisioners. Key material is written to files in `workDir` (0600). */
export class SshClient {
  constructor(private readonly workDir: string) {
    mkdirSync(workDir, { recursive: true, mode: 0o700 });
  }

  private keyFile(key: string): string {
    const f = join(this.workDir, `key-${createHash("sha256").update(key).digest("hex").slice(0, 16)}`);
    if (!existsSync(f)) writeFileSync(f, key.endsWith("\n") ? key : `${key}\n`, { mode: 0o600 });
    return f;
  }

  private knownHosts(host: string, port: number, key: string): string {
    const name = port === 22 ? host : `[${host}]:${port}`;
    const line = `${name} ${key.trim().split(/\s+/).slice(0, 2).join(" ")}\n`;
    const f = join(this.workDir, `known-${createHash("sha256").update(line).digest("hex").slice(0, 16)}`);
    if (!existsSync(f)) writeFileSync(f, line, { mode: 0o600 });
    return f;
  }

  private common(connectTimeoutS: number, key: string | undefined, agent: boolean, host: string, port: number, hostKey: string | undefined): string[] {
    return [
      "-F", "/dev/null",
      "-o", "BatchMode=yes",
      "-o", "LogLevel=ERROR",
      "-o", `ConnectTimeout=${connectTimeoutS}`,
      "-o", "ServerAliveInterval=5",
      "-o", "ServerAliveCountMax=6",
      ...(key ? ["-i", this.keyFile(key), "-o", "IdentitiesOnly=yes"] : []),
      ...(agent ? [] : ["-o", "IdentityAgent=none"]),
      ...(hostKey
        ? ["-o", `UserKnownHostsFile=${this.knownHosts(host, port, hostKey)}`, "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes"]
        : ["-o", "UserKnownHostsFile=/dev/null", "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no"]),
    ];
  }

  /** ssh arguments up to (not including) the remote command. */
  public sshArgs(c: Connection, connectTimeoutS: number): string[] {
    const args = [...this.common(connectTimeoutS, c.privateKey, c.agent, c.host, c.port, c.hostKey), "-p", String(c.port)];
    if (c.bastion) {
      const b = c.bastion;
      const jump = ["ssh", ...this.common(connectTimeoutS, b.privateKey, c.agent, b.host, b.port, b.hostKey),
        "-p", String(b.port), "-l", b.user, "-W", "%h:%p", b.host];
      args.push("-o", `ProxyCommand=${jump.map((a) => (a === "%h:%p" ? a : q(a))).join(" ")}`);
    }
    args.push("-l", c.user, c.host);
    return args;
  }

  private exec(args: string[], input: Buffer | string | undefined, timeoutMs: number): Promise<RunResult> {
    return new Promise((resolve) => {
      const child = spawn("ssh", args, { stdio: ["pipe", "pipe", "pipe"], env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root" } });
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (d) => (stdout += d));
      child.stderr.setEncoding("utf8").on("data", (d) => (stderr += d));
      const timer = setTimeout(() => { stderr += `\n(harness: killed after ${timeoutMs} ms)`; child.kill("SIGKILL"); }, timeoutMs);
      child.on("close", (code) => { clearTimeout(timer); resolve({ code: code ?? 255, stdout, stderr }); });
      child.on("error", (e) => { clearTimeout(timer); resolve({ code: 255, stdout, stderr: stderr + e.message }); });
      child.stdin.on("error", () => { /* remote closed early */ });
      child.stdin.end(input ?? "");
    });
  }

  /**
   * Open one SSH connection (a ControlMaster) for a provisioner, retrying until the connection's
   * timeout like Terraform does; throws an error naming the host when it never answers. Like
   * Terraform's communicator, everything the provisioner does then goes over that one connection.
   */
  public async connect(c: Connection): Promise<Session> {
    const start = Date.now();
    let last = "";
    for (let attempt = 0; ; attempt++) {
      const left = c.timeoutMs - (Date.now() - start);
      const per = Math.max(1, Math.min(10, Math.ceil(left / 1000)));
      const sock = join(this.workDir, `cm-${randomBytes(6).toString("hex")}`);
      const log = `${sock}.log`;
      const code = await new Promise<number>((resolve) => {
        const child = spawn("ssh", [...this.sshArgs(c, per), "-M", "-S", sock, "-o", "ControlPersist=yes", "-f", "-N", "-E", log],
          { stdio: "ignore", env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root" } });
        const timer = setTimeout(() => child.kill("SIGKILL"), per * 1000 + 5000);
        child.on("exit", (code2) => { clearTimeout(timer); resolve(code2 ?? 255); });
        child.on("error", () => { clearTimeout(timer); resolve(255); });
      });
      let logText = "";
      try { logText = readFileSync(log, "utf8"); unlinkSync(log); } catch { /* none */ }
      if (code === 0) return new Session(this, c, sock);
      last = logText.trim().split("\n").filter((l) => l.trim()).slice(-2).join(" / ") || `ssh exited ${code}`;
      // Authentication and host key failures will not fix themselves: fail at once, like Terraform.
      if (/Permission denied|Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/.test(last)) {
        throw new Error(`ssh ${describe(c)}: ${last}`);
      }
      if (Date.now() - start + 1000 >= c.timeoutMs) {
        throw new Error(`timeout - could not connect to ${describe(c)} within ${c.timeoutMs / 1000}s - last error: ${last}`);
      }
      await new Promise((r2) => setTimeout(r2, 1000));
    }
  }

  /** @internal run ssh with arguments, feeding `input`. */
  public _exec(args: string[], input: Buffer | string | undefined, timeoutMs: number): Promise<RunResult> {
    return this.exec(args, input, timeoutMs);
  }

  /** The path a remote-exec script is uploaded to (Terraform replaces %RAND% with a random number). */
  public static scriptPath(c: Connection): string {
    return c.scriptPath.replace("%RAND%", String(randomInt(1, 2 ** 31 - 1)));
  }
}
