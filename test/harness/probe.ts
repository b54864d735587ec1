/**
 * Real packets between lab hosts: a listener on the target (inside its namespaces), a bounded
 * TCP connect or UDP send from the source, and receipt checked on the target. "Open" means the
 * target got the bytes; a firewall that drops them shows up as a missing receipt, never as a hang:
 * every connect, send and wait has a bound, and every listener is killed by its process group id.
 */
import { ChildProcess, spawn } from "child_process";
import { randomBytes } from "crypto";

export interface ProbeExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Anything packets can be sent from or to: a lab host, a bare network namespace, this machine. */
export interface ProbeHost {
  readonly name: string;
  readonly address: string;
  exec(cmd: string, opts?: { timeoutMs?: number }): Promise<ProbeExecResult>;
}

export type Proto = "tcp" | "udp";

/** How long a TCP connect may take before the port counts as filtered. */
const CONNECT_TIMEOUT_S = 2;
/** How long the target is watched for a datagram or a connection's bytes. */
const RECEIPT_WAIT_MS = 1500;

function sh(cmd: string, timeoutMs: number, wrap: (c: string) => string[]): Promise<ProbeExecResult> {
  return new Promise((resolve, reject) => {
    const [bin, ...args] = wrap(cmd);
    const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", (e) => { clearTimeout(timer); reject(e); });
    child.on("close", (code, signal) => { clearTimeout(timer); resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }); });
  });
}

/** The parts of a lab host (test/harness/lab.ts) a probe needs. */
export interface SpawningHost {
  readonly name: string;
  readonly address: string;
  spawn(cmd: string): ChildProcess;
}

/**
 * A lab host as a probe end. Runs commands through the host's own spawn() with stdin closed at
 * once (a command that exits before reading stdin must not fail the probe with EPIPE).
 */
export function labHost(h: SpawningHost): ProbeHost {
  return {
    name: h.name,
    address: h.address,
    exec: (cmd, o) => new Promise((resolve, reject) => {
      const child = h.spawn(cmd);
      let stdout = "";
      let stderr = "";
      child.stdin?.on("error", () => { /* exited before reading stdin */ });
      child.stdin?.end();
      child.stdout!.setEncoding("utf8").on("data", (d) => (stdout += d));
      child.stderr!.setEncoding("utf8").on("data", (d) => (stderr += d));
      const timer = setTimeout(() => child.kill("SIGKILL"), o?.timeoutMs ?? 30000);
      child.on("error", (e) => { clearTimeout(timer); reject(e); });
      child.on("close", (code, signal) => { clearTimeout(timer); resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }); });
    }),
  };
}

/** This machine (the "admin" end of the lab's bridge). Only ever a source of packets. */
export function localHost(name: string, address: string): ProbeHost {
  return { name, address, exec: (cmd, o) => sh(cmd, o?.timeoutMs ?? 30000, (c) => ["/bin/sh", "-c", c]) };
}

/** A bare network namespace made by a test (`ip netns add`), sharing this machine's filesystem. */
export function netnsHost(name: string, netns: string, address: string): ProbeHost {
  return { name, address, exec: (cmd, o) => sh(cmd, o?.timeoutMs ?? 30000, (c) => ["ip", "netns", "exec", netns, "/bin/sh", "-c", c]) };
}

function q(s: string): string {
  return `'${s.replace(/'/g, "'\\''")}'`;
}

async function must(h: ProbeHost, cmd: string, timeoutMs = 15000): Promise<string> {
  const r = await h.exec(cmd, { timeoutMs });
  if (r.code !== 0) throw new Error(`[${h.name}] ${cmd}: exit ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** A listener on one port of one host, writing everything it receives to a file there. */
export class Listener {
  private closed = false;

  constructor(
    public readonly target: ProbeHost,
    public readonly port: number,
    public readonly proto: Proto,
    /** Process group id of socat on the target (its own session). */
    public readonly pgid: number,
    public readonly file: string,
  ) {}

  /** Whether `nonce` arrived, waiting at most `waitMs`. */
  public async received(nonce: string, waitMs = RECEIPT_WAIT_MS): Promise<boolean> {
    const tries = Math.max(1, Math.ceil(waitMs / 100));
    const r = await this.target.exec(
      `i=0; while [ $i -lt ${tries} ]; do grep -qF ${q(nonce)} ${q(this.file)} 2>/dev/null && exit 0; sleep 0.1; i=$((i+1)); done; exit 1`,
      { timeoutMs: waitMs + 5000 });
    return r.code === 0;
  }

  /** Kill the listener's process group and remove its file; checks that it is gone. */
  public async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // dash's kill takes a negative id as a process group but not "--". A killed listener whose
    // parent is gone may stay a zombie (a lab host's first process does not reap): zombies count
    // as dead.
    const alive = `ps -eo pgid=,stat= | awk -v g=${this.pgid} '$1 == g && $2 !~ /^Z/' | grep -q .`;
    const r = await this.target.exec(
      `kill -TERM -${this.pgid} 2>/dev/null; i=0; while ${alive} && [ $i -lt 30 ]; do sleep 0.1; i=$((i+1)); done; ` +
      `kill -KILL -${this.pgid} 2>/dev/null; sleep 0.1; rm -f ${q(this.file)}; ! ${alive}`, { timeoutMs: 10000 });
    if (r.code !== 0) throw new Error(`[${this.target.name}] listener ${this.port}/${this.proto} (process group ${this.pgid}) would not die`);
  }
}

/**
 * Start a listener on `port`/`proto` on every address of `target`. Waits (bounded) until the
 * socket is listening. The caller must close() it (use withListeners for that).
 */
export async function listen(target: ProbeHost, port: number, proto: Proto): Promise<Listener> {
  const file = `/tmp/cdktf-probe-${proto}-${port}-${randomBytes(4).toString("hex")}.log`;
  const addr = proto === "tcp" ? `TCP4-LISTEN:${port},reuseaddr,fork` : `UDP4-RECV:${port},reuseaddr`;
  // setsid: a session (and process group) of its own, so close() kills socat and its forks by id.
  const out = await must(target,
    `: > ${q(file)}; setsid socat -u ${addr} OPEN:${q(file)},creat,append </dev/null >/dev/null 2>&1 & echo $!`);
  const pgid = Number(out.trim());
  if (!Number.isInteger(pgid) || pgid <= 1) throw new Error(`[${target.name}] listener on ${port}/${proto}: no pid (${out})`);
  const listener = new Listener(target, port, proto, pgid, file);
  const ss = proto === "tcp" ? "ss -Hltn" : "ss -Hlun";
  const ready = await target.exec(
    `i=0; while [ $i -lt 50 ]; do ${ss} "sport = :${port}" | grep -q . && exit 0; ps -o stat= -p ${pgid} | grep -qv '^Z' || exit 2; sleep 0.1; i=$((i+1)); done; exit 1`,
    { timeoutMs: 10000 });
  if (ready.code !== 0) {
    await listener.close();
    throw new Error(`[${target.name}] listener on ${port}/${proto} did not come up (exit ${ready.code})`);
  }
  return listener;
}

export interface SendResult {
  /** TCP: the connection was established. UDP: always true when socat ran. */
  readonly connected: boolean;
  readonly detail: string;
}

/**
 * Send `nonce` from `source` to `address:port`. TCP: connect with a bound, write, close.
 * UDP: three datagrams 100 ms apart. `fromAddress` binds the source address (which must be
 * configured on the source).
 */
export async function send(source: ProbeHost, address: string, port: number, proto: Proto, nonce: string, fromAddress?: string): Promise<SendResult> {
  const bind = fromAddress ? `,bind=${fromAddress}` : "";
  if (proto === "tcp") {
    const r = await source.exec(
      `printf '%s\\n' ${q(nonce)} | timeout ${CONNECT_TIMEOUT_S + 3} socat -u STDIN TCP4:${address}:${port},connect-timeout=${CONNECT_TIMEOUT_S}${bind}`,
      { timeoutMs: (CONNECT_TIMEOUT_S + 8) * 1000 });
    return { connected: r.code === 0, detail: r.stderr.trim() };
  }
  const r = await source.exec(
    `for i in 1 2 3; do printf '%s\\n' ${q(nonce)} | timeout 3 socat -u STDIN UDP4-SENDTO:${address}:${port}${bind} || exit 1; sleep 0.1; done`,
    { timeoutMs: 15000 });
  return { connected: r.code === 0, detail: r.stderr.trim() };
}

/** Whether something answering SSH (an `SSH-` banner) is reachable at address:port from source. */
export async function sshBanner(source: ProbeHost, address: string, port = 22, fromAddress?: string): Promise<boolean> {
  const bind = fromAddress ? `,bind=${fromAddress}` : "";
  const r = await source.exec(
    `timeout ${CONNECT_TIMEOUT_S + 4} socat -T 3 -u TCP4:${address}:${port},connect-timeout=${CONNECT_TIMEOUT_S}${bind} STDOUT </dev/null | head -c 8`,
    { timeoutMs: (CONNECT_TIMEOUT_S + 10) * 1000 });
  return r.stdout.startsWith("SSH-");
}

/** One probe of a matrix: from `source` to `target`'s `address` (default its own) on port/proto. */
export interface ProbeCase {
  readonly source: ProbeHost;
  readonly target: ProbeHost;
  readonly port: number;
  readonly proto: Proto;
  /** Address to send to. @default target.address */
  readonly address?: string;
  /** Source address to bind. @default the source's routing choice */
  readonly fromAddress?: string;
  /** What the test expects; reported next to the result. */
  readonly expect: "open" | "blocked";
  /** The port already has a real SSH server: check its banner instead of starting a listener. */
  readonly ssh?: boolean;
}

export interface ProbeResult {
  readonly case: ProbeCase;
  readonly open: boolean;
  readonly line: string;
}

/** A readable line: "stranger -> server 6443/tcp: blocked (expected blocked)". */
export function describeCase(c: ProbeCase, open: boolean): string {
  const to = c.address && c.address !== c.target.address ? `${c.target.name}(${c.address})` : c.target.name;
  const from = c.fromAddress ? `${c.source.name}(${c.fromAddress})` : c.source.name;
  return `${from} -> ${to} ${c.port}/${c.proto}: ${open ? "open" : "blocked"} (expected ${c.expect})`;
}

/**
 * Run a matrix of probes with real packets. One listener per (target, port, proto), shared by
 * every source probing it; all probes of a listener run in parallel; listeners are closed (by
 * process group id) before returning, also when something throws.
 */
export async function runMatrix(cases: ProbeCase[]): Promise<ProbeResult[]> {
  const results = new Map<ProbeCase, boolean>();
  const groups = new Map<string, ProbeCase[]>();
  for (const c of cases) {
    if (c.ssh) continue;
    const key = `${c.target.name}|${c.port}|${c.proto}`;
    groups.set(key, [...(groups.get(key) ?? []), c]);
  }
  await Promise.all(cases.filter((c) => c.ssh).map(async (c) => {
    results.set(c, await sshBanner(c.source, c.address ?? c.target.address, c.port, c.fromAddress));
  }));
  // Per target, groups one after another (a target never listens on the same port twice at once),
  // probes in parallel; different targets in parallel (their listeners never collide).
  const byTarget = new Map<string, ProbeCase[][]>();
  for (const group of groups.values()) {
    const t = group[0].target.name;
    byTarget.set(t, [...(byTarget.get(t) ?? []), group]);
  }
  await Promise.all([...byTarget.values()].map(async (targetGroups) => {
    for (const group of targetGroups) {
      const { target, port, proto } = group[0];
      const listener = await listen(target, port, proto);
      try {
        await Promise.all(group.map(async (c) => {
          const nonce = `probe-${c.source.name}-${randomBytes(6).toString("hex")}`;
          await send(c.source, c.address ?? target.address, port, proto, nonce, c.fromAddress);
          results.set(c, await listener.received(nonce));
        }));
      } finally {
        await listener.close();
      }
    }
  }));
  return cases.map((c) => ({ case: c, open: results.get(c)!, line: describeCase(c, results.get(c)!) }));
}

/** The lines of results that differ from what was expected (empty when the matrix holds). */
export function surprises(results: ProbeResult[]): string[] {
  return results.filter((r) => (r.case.expect === "open") !== r.open).map((r) => r.line);
}
