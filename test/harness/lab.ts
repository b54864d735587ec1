/**
 * Throwaway Linux hosts on this machine for real-host tests.
 *
 * Each host is:
 *  - a network namespace (`ip netns`) whose eth0 is plugged into a bridge that lives in a namespace of
 *    its own; the test machine reaches the bridge through one veth whose address is `lab.adminAddress`;
 *  - a private mount, UTS and PID namespace: /etc, /var, /usr/local, /opt, /root and /home are overlay
 *    copies of this machine's (writes land in a tmpfs that disappears with the host), /tmp and /run are
 *    fresh tmpfs, /proc and /sys belong to the host. So /etc/ufw, /etc/rancher, /var/lib/rancher,
 *    /usr/local/bin, /var/lib/cdktf-k3s-kilo, /etc/cni, /opt/cni, /var/lib/kilo, /etc/passwd, /etc/shadow,
 *    /etc/sudoers.d … are per host and nothing reaches the real files;
 *  - its own OpenSSH server started with its own `-f` config, host key and authorized_keys in the lab's
 *    temporary directory (never /etc/ssh or /root/.ssh), keys generated at run time;
 *  - users: root; `deployer` with passwordless sudo; `pwsudo`, whose sudo needs a password (for the
 *    fault tests). Both exist only inside that host.
 *
 * ufw and iptables run inside a host act on that host's network namespace only.
 *
 * Cleanup is by id: every namespace, link, process and directory this lab made, on `cleanup()`, on
 * process exit and signals, and — if the test process is killed outright — by a detached reaper that
 * notices its pipe to the test process closing. The PID namespace of each host dies with its first
 * process, which reads a pipe from the test process, so no host process outlives the test process.
 */
import { ChildProcess, execFileSync, spawn, spawnSync } from "child_process";
import { randomBytes } from "crypto";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, existsSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";

/** A host to create. */
export interface LabHostSpec {
  /** Short name: letters, digits and dashes (used as hostname). */
  readonly name: string;
  /** IPv4 address in a documentation range (198.51.100.0/24 or 203.0.113.0/24). */
  readonly address: string;
  /** Log in as the passwordless-sudo user `deployer` instead of root (`sshUser`). @default false */
  readonly sudoUser?: boolean;
  /**
   * Accept SSH only from these addresses (sshd `AllowUsers *@ADDR`), e.g. a bastion's: the host is then
   * reachable from the test machine only through it.
   * @default - from anywhere
   */
  readonly sshAllowFrom?: string[];
}

export interface LabOptions {
  readonly hosts: LabHostSpec[];
  /**
   * The test machine's address on the bridge (same /24 as the hosts).
   * @default - .1 of the first host's /24
   */
  readonly adminAddress?: string;
}

export interface ExecOptions {
  /** Written to the command's stdin. */
  readonly input?: string;
  /** Kill the command after this long. @default 60000 */
  readonly timeoutMs?: number;
  /** Extra environment variables. */
  readonly env?: Record<string, string>;
  /** Run as this user of the host instead of root (runuser). */
  readonly user?: string;
}

export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** The passwordless-sudo user on every host. */
export const SUDO_USER = "deployer";
/** A user whose sudo asks for a password, on every host. */
export const PASSWORD_SUDO_USER = "pwsudo";

// Only these two: 192.0.2.0/24 is not used for lab hosts on these machines.
const ALLOWED_RANGES = ["198.51.100.", "203.0.113."];
const HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/** Where each host sees the copy-on-write layers of what it wrote: LAYERS_DIR/<etc|var|usr_local|…>/upper. */
export const LAYERS_DIR = "/run/cdktf-lab-layers";
/** Where each host sees its own lab directory (bind mount). */
export const HOST_LAB_DIR = "/run/cdktf-lab";

function run(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", input, timeout: 30000 });
  if (r.error) throw new Error(`${cmd} ${args.join(" ")}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}: ${r.stderr.trim()}`);
  return r.stdout;
}

function tryRun(cmd: string, args: string[]): void {
  spawnSync(cmd, args, { stdio: "ignore", timeout: 15000 });
}

function subnet24(address: string): string {
  return address.split(".").slice(0, 3).join(".");
}

/** One throwaway host. */
export class LabHost {
  /** Pid (in this machine's PID namespace) of the host's first process; its namespaces are the host's. */
  public initPid = 0;
  private holder?: ChildProcess;

  constructor(
    private readonly lab: Lab,
    public readonly name: string,
    public readonly address: string,
    /** Name of the network namespace (`ip netns exec <netns> …` works). */
    public readonly netns: string,
    /** The login user tests should use: "root", or the passwordless-sudo user. */
    public readonly sshUser: string,
    /** The host's public key line, `ssh-ed25519 AAAA…`. */
    public readonly hostKey: string,
    /** This host's directory in the lab (outside the host; the host sees it at HOST_LAB_DIR). */
    public readonly dir: string,
  ) {}

  /** Run `cmd` with /bin/sh as root (or opts.user) inside the host's namespaces. */
  public exec(cmd: string, opts: ExecOptions = {}): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
      const child = this.spawn(cmd, opts);
      let stdout = "";
      let stderr = "";
      child.stdout!.setEncoding("utf8").on("data", (d) => (stdout += d));
      child.stderr!.setEncoding("utf8").on("data", (d) => (stderr += d));
      const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 60000);
      child.on("error", (e) => { clearTimeout(timer); reject(e); });
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
      });
      child.stdin!.on("error", () => { /* the command did not read its input */ });
      child.stdin!.end(opts.input ?? "");
    });
  }

  /** Like exec, but throws unless the command exits 0; returns stdout. */
  public async run(cmd: string, opts: ExecOptions = {}): Promise<string> {
    const r = await this.exec(cmd, opts);
    if (r.code !== 0) throw new Error(`[${this.name}] ${cmd}: exit ${r.code}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** Start a long-running command inside the host (a listener, a sampler). Kill it with child.kill(). */
  public spawn(cmd: string, opts: ExecOptions = {}): ChildProcess {
    if (!this.initPid) throw new Error(`lab host ${this.name} is not running`);
    const inner = opts.user ? ["runuser", "-u", opts.user, "--", "/bin/sh", "-c", cmd] : ["/bin/sh", "-c", cmd];
    return spawn("nsenter", ["-t", String(this.initPid), "-m", "-u", "-n", "-p", "--wd=/", "--", ...inner], {
      env: { PATH: HOST_PATH, HOME: "/root", LANG: "C.UTF-8", ...(opts.env ?? {}) },
      stdio: ["pipe", "pipe", "pipe"],
    });
  }

  /** Read a file of the host (as root). */
  public async readFile(path: string): Promise<string> {
    return this.run(`cat -- '${path.replace(/'/g, "'\\''")}'`);
  }

  /** Stop the host's sshd (connections are refused afterwards). */
  public async stopSshd(): Promise<void> {
    await this.run(`if [ -f /run/sshd.pid ]; then kill "$(cat /run/sshd.pid)"; fi; i=0; while [ -f /run/sshd.pid ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; rm -f /run/sshd.pid`);
  }

  /** Start the host's sshd again. */
  public async startSshd(): Promise<void> {
    await this.run(`/usr/sbin/sshd -f ${HOST_LAB_DIR}/sshd_config -E ${HOST_LAB_DIR}/sshd.log`);
  }

  /** @internal */
  public _start(setupScript: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawn("nsenter", [`--net=/run/netns/${this.netns}`, "--",
        "unshare", "--mount", "--uts", "--pid", "--fork", "--mount-proc", "--propagation", "private",
        "--", "/bin/sh", "-c", setupScript], {
        env: { PATH: HOST_PATH, HOME: "/root", LANG: "C.UTF-8" },
        stdio: ["pipe", "pipe", "pipe"],
        detached: false,
      });
      this.holder = child;
      this.lab._track(child);
      let out = "";
      let err = "";
      const timer = setTimeout(() => reject(new Error(`lab host ${this.name}: setup timed out: ${err}`)), 30000);
      child.stdout!.setEncoding("utf8").on("data", (d) => {
        out += d;
        if (out.includes("LAB-READY")) {
          clearTimeout(timer);
          try {
            const kids = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, "utf8").trim().split(/\s+/);
            this.initPid = Number(kids[0]);
            writeFileSync(join(this.dir, "init.pid"), `${this.initPid}\n`);
            resolve();
          } catch (e) {
            reject(e);
          }
        }
      });
      child.stderr!.setEncoding("utf8").on("data", (d) => (err += d));
      child.on("exit", (code) => {
        this.initPid = 0;
        if (!out.includes("LAB-READY")) {
          clearTimeout(timer);
          reject(new Error(`lab host ${this.name}: setup failed (exit ${code}): ${err.trim()}`));
        }
      });
    });
  }

  /** @internal */
  public _kill(): void {
    if (this.initPid) {
      try { process.kill(this.initPid, "SIGKILL"); } catch { /* gone */ }
    }
    try { this.holder?.stdin?.destroy(); } catch { /* gone */ }
    try { this.holder?.kill("SIGKILL"); } catch { /* gone */ }
    this.initPid = 0;
  }
}

/** A set of throwaway hosts on one bridge. */
export class Lab {
  public readonly hosts: LabHost[] = [];
  /** Private key (ed25519) authorized for root, deployer and pwsudo on every host. */
  public readonly privateKeyPath: string;
  /** Its public key line. */
  public readonly publicKey: string;
  /** A known_hosts file with every host's key (by address). */
  public readonly knownHostsPath: string;
  private readonly children: ChildProcess[] = [];
  private cleaned = false;
  private reaper?: ChildProcess;
  private readonly exitHandler = () => this.cleanupSync();
  private readonly signalHandler = (sig: NodeJS.Signals) => { this.cleanupSync(); process.exit(sig === "SIGINT" ? 130 : 143); };

  constructor(
    /** The lab's temporary directory (0700). */
    public readonly dir: string,
    /** Short id in every namespace and link name of this lab. */
    public readonly id: string,
    /** The test machine's address on the bridge. */
    public readonly adminAddress: string,
  ) {
    this.privateKeyPath = join(dir, "id_ed25519");
    this.knownHostsPath = join(dir, "known_hosts");
    run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `cdktf-lab-${id}`, "-f", this.privateKeyPath]);
    this.publicKey = readFileSync(`${this.privateKeyPath}.pub`, "utf8").trim();
  }

  /** The script the reaper runs if the test process dies without cleaning up. */
  public get reaperScript(): string { return join(this.dir, "..", `cdktf-lab-${this.id}-reaper.sh`); }

  /** The bridge's namespace. */
  public get bridgeNetns(): string { return `cdktflab-${this.id}-br`; }
  /** The test machine's end of the link to the bridge. */
  public get adminLink(): string { return `ckl${this.id}`; }

  public host(name: string): LabHost {
    const h = this.hosts.find((x) => x.name === name);
    if (!h) throw new Error(`no lab host named ${name} (have ${this.hosts.map((x) => x.name).join(", ")})`);
    return h;
  }

  /** ssh client arguments (before the remote command) that log in to `host` as `user`. */
  public sshArgs(host: LabHost, user = host.sshUser, connectTimeoutSeconds = 5): string[] {
    return ["-i", this.privateKeyPath, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
      "-o", `UserKnownHostsFile=${this.knownHostsPath}`, "-o", "StrictHostKeyChecking=yes",
      "-o", "GlobalKnownHostsFile=/dev/null", "-o", `ConnectTimeout=${connectTimeoutSeconds}`,
      "-o", "LogLevel=ERROR", "-l", user, host.address];
  }

  /** Run a command on `host` over real SSH from the test machine. */
  public ssh(host: LabHost, cmd: string, user = host.sshUser): ExecResult {
    const r = spawnSync("ssh", [...this.sshArgs(host, user), cmd], { encoding: "utf8", timeout: 30000 });
    return { code: r.status ?? 255, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
  }

  /** @internal */
  public _track(child: ChildProcess): void { this.children.push(child); }

  /** Remove every namespace, link, process and file of this lab. Safe to call more than once. */
  public async cleanup(): Promise<void> {
    this.cleanupSync();
  }

  /** The shell commands that remove this lab; also what the reaper runs. */
  public cleanupScript(): string {
    const lines = [
      ...this.hosts.map((h) => `p=$(cat '${join(h.dir, "init.pid")}' 2>/dev/null) && [ -n "$p" ] && ` +
        `[ "$(readlink /proc/$p/ns/net 2>/dev/null)" = "$(ip netns exec ${h.netns} readlink /proc/self/ns/net 2>/dev/null)" ] && kill -9 "$p"`),
      ...this.hosts.map((h) => `ip netns del ${h.netns}`),
      `ip netns del ${this.bridgeNetns}`,
      `ip link del ${this.adminLink}`,
      `rm -rf '${this.dir}'`,
    ];
    return lines.map((l) => `${l} 2>/dev/null`).join("\n") + "\ntrue\n";
  }

  /** @internal the synchronous cleanup (exit handlers can only run synchronous code) */
  public cleanupSync(): void {
    if (this.cleaned) return;
    this.cleaned = true;
    for (const h of this.hosts) h._kill();
    for (const c of this.children) { try { c.kill("SIGKILL"); } catch { /* gone */ } }
    // Give the kernel a moment to tear the PID namespaces down before removing their netns.
    for (const h of this.hosts) tryRun("ip", ["netns", "del", h.netns]);
    tryRun("ip", ["netns", "del", this.bridgeNetns]);
    tryRun("ip", ["link", "del", this.adminLink]);
    try { execFileSync("rm", ["-rf", this.dir], { stdio: "ignore" }); } catch { /* best effort */ }
    try { this.reaper?.kill("SIGKILL"); } catch { /* gone */ }
    try { execFileSync("rm", ["-f", this.reaperScript], { stdio: "ignore" }); } catch { /* best effort */ }
    process.removeListener("exit", this.exitHandler);
    process.removeListener("SIGINT", this.signalHandler);
    process.removeListener("SIGTERM", this.signalHandler);
  }

  /** @internal */
  public _armCleanup(): void {
    process.on("exit", this.exitHandler);
    process.once("SIGINT", this.signalHandler);
    process.once("SIGTERM", this.signalHandler);
    const script = this.reaperScript;
    writeFileSync(script, `${this.cleanupScript()}rm -f '${script}'\n`, { mode: 0o700 });
    // A detached reaper: when the test process dies for any reason its pipe closes and the lab goes.
    const reaper = spawn("sh", ["-c", `cat >/dev/null; exec sh '${script}'`], {
      stdio: ["pipe", "ignore", "ignore"], detached: true,
    });
    reaper.unref();
    (reaper.stdin as unknown as { unref?: () => void }).unref?.();
    this.reaper = reaper;
  }

  /** @internal rewrite the reaper's script once hosts exist */
  public _writeReaper(): void {
    const script = this.reaperScript;
    writeFileSync(script, `${this.cleanupScript()}rm -f '${script}'\n`, { mode: 0o700 });
  }
}

function hostSetupScript(h: LabHost, spec: LabHostSpec, uidBase: number): string {
  const D = HOST_LAB_DIR;
  return `set -eu
H='${h.dir}'
# The lab directory, reachable inside the host (before /tmp is covered).
mount -t tmpfs -o mode=0755 lab-run /run
mkdir -p ${D} /run/sshd /run/lock
mount --bind "$H/share" ${D}
# Copy-on-write copies of the directories scripts write; the upper layers live in a tmpfs.
mount -t tmpfs -o mode=0700 lab-priv "$H/priv"
for d in etc var usr/local opt root home srv; do
  k=$(echo "$d" | tr / _)
  mkdir -p "$H/priv/$k/upper" "$H/priv/$k/work"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$H/priv/$k/upper,workdir=$H/priv/$k/work" "/$d"
done
# What this host wrote, readable inside it (tests grep it for secrets).
mkdir -p ${LAYERS_DIR}
mount --bind "$H/priv" ${LAYERS_DIR}
mount -t tmpfs -o mode=1777 lab-tmp /tmp
mount -t sysfs lab-sys /sys 2>/dev/null || true
hostname '${h.name}'
echo '${h.name}' > /etc/hostname
printf '127.0.0.1 localhost\\n127.0.1.1 ${h.name}\\n${h.address} ${h.name}\\n' > /etc/hosts
# Users that exist only inside this host.
sed -i 's/^root:[^:]*:/root:*:/' /etc/shadow
for u in ${SUDO_USER}:${uidBase} ${PASSWORD_SUDO_USER}:${uidBase + 1}; do
  name=\${u%%:*}; id=\${u##*:}
  echo "$name:x:$id:$id::/home/$name:/bin/sh" >> /etc/passwd
  echo "$name:*:20000:0:99999:7:::" >> /etc/shadow
  echo "$name:x:$id:" >> /etc/group
  mkdir -p "/home/$name"; chown "$id:$id" "/home/$name"
done
printf '%s ALL=(ALL:ALL) NOPASSWD:ALL\\n' ${SUDO_USER} > /etc/sudoers.d/cdktf-lab-${SUDO_USER}
printf '%s ALL=(ALL:ALL) ALL\\n' ${PASSWORD_SUDO_USER} > /etc/sudoers.d/cdktf-lab-${PASSWORD_SUDO_USER}
chmod 0440 /etc/sudoers.d/cdktf-lab-*
ip link set lo up
/usr/sbin/sshd -f ${D}/sshd_config -E ${D}/sshd.log
echo LAB-READY
exec cat >/dev/null
`;
}

function sshdConfig(h: LabHost, spec: LabHostSpec): string {
  const D = HOST_LAB_DIR;
  return [
    ...(spec.sshAllowFrom ? [`AllowUsers ${spec.sshAllowFrom.map((a) => `*@${a}`).join(" ")}`] : []),
    `# sshd of lab host ${h.name} (cdktf-k3s-kilo tests)`,
    `ListenAddress ${h.address}`,
    "Port 22",
    `HostKey ${D}/ssh_host_ed25519_key`,
    `AuthorizedKeysFile ${D}/authorized_keys`,
    "PidFile /run/sshd.pid",
    "PermitRootLogin prohibit-password",
    "PubkeyAuthentication yes",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "UsePAM no",
    "StrictModes no",
    "PrintMotd no",
    "PrintLastLog no",
    "X11Forwarding no",
    "AllowTcpForwarding yes",
    "MaxStartups 100:30:200",
    "MaxSessions 50",
    "Subsystem sftp internal-sftp",
    "",
  ].join("\n");
}

/** Create the hosts. Throws (after cleaning up) if anything fails. */
export async function createLab(options: LabOptions): Promise<Lab> {
  if (process.getuid?.() !== 0) throw new Error("the lab needs root (network and mount namespaces)");
  const specs = options.hosts;
  if (!specs.length) throw new Error("createLab: no hosts");
  const net = subnet24(specs[0].address);
  for (const s of specs) {
    if (!/^[a-z][a-z0-9-]{0,30}$/.test(s.name)) throw new Error(`lab host name "${s.name}": use lower-case letters, digits and dashes`);
    if (!ALLOWED_RANGES.some((r) => s.address.startsWith(r)) || !/^\d+\.\d+\.\d+\.\d+$/.test(s.address)) {
      throw new Error(`lab host ${s.name}: ${s.address} is not in a documentation range (${ALLOWED_RANGES.map((r) => r + "0/24").join(", ")})`);
    }
    if (subnet24(s.address) !== net) throw new Error(`lab host ${s.name}: every host must be in ${net}.0/24`);
  }
  if (new Set(specs.map((s) => s.name)).size !== specs.length) throw new Error("lab host names must be unique");
  if (new Set(specs.map((s) => s.address)).size !== specs.length) throw new Error("lab host addresses must be unique");
  const adminAddress = options.adminAddress ?? `${net}.1`;
  if (specs.some((s) => s.address === adminAddress)) throw new Error(`${adminAddress} is the test machine's address on the bridge`);
  // The test machine routes only this lab's own addresses (/32 each), never the whole /24: other
  // addresses of the documentation ranges may be real services here (the package registries' are).
  const routed = [adminAddress, ...specs.map((s) => s.address)].flatMap((a) =>
    run("ip", ["-4", "route", "show", "to", "match", a]).split("\n").filter((l) => l.trim() && !l.startsWith("default")));
  if (routed.length) {
    throw new Error(`lab addresses in ${net}.0/24 are already in use on this machine (${routed.join("; ")}); ` +
      "another lab is running or the range belongs to a real interface: give each concurrent test file its own addresses");
  }

  const id = randomBytes(3).toString("hex");
  const dir = mkdtempSync(join(tmpdir(), `cdktf-lab-${id}-`));
  chmodSync(dir, 0o700);
  const lab = new Lab(dir, id, adminAddress);
  lab._armCleanup();
  try {
    // The bridge, in a namespace of its own, and the test machine's link to it.
    run("ip", ["netns", "add", lab.bridgeNetns]);
    const br = (...a: string[]) => run("ip", ["-n", lab.bridgeNetns, ...a]);
    br("link", "add", "br0", "type", "bridge");
    br("link", "set", "br0", "up");
    br("link", "set", "lo", "up");
    run("ip", ["link", "add", lab.adminLink, "type", "veth", "peer", "name", "admin", "netns", lab.bridgeNetns]);
    br("link", "set", "admin", "master", "br0", "up");
    run("ip", ["addr", "add", `${adminAddress}/32`, "dev", lab.adminLink]);
    run("ip", ["link", "set", lab.adminLink, "up"]);

    const knownHosts: string[] = [];
    const uidBase = 4100;
    specs.forEach((s, i) => {
      const netns = `cdktflab-${id}-${s.name}`;
      const hdir = join(dir, "hosts", s.name);
      mkdirSync(join(hdir, "share"), { recursive: true });
      mkdirSync(join(hdir, "priv"), { recursive: true });
      run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `lab-${s.name}`, "-f", join(hdir, "share", "ssh_host_ed25519_key")]);
      const hostKey = readFileSync(join(hdir, "share", "ssh_host_ed25519_key.pub"), "utf8").trim().split(/\s+/).slice(0, 2).join(" ");
      const host = new LabHost(lab, s.name, s.address, netns, s.sudoUser ? SUDO_USER : "root", hostKey, hdir);
      lab.hosts.push(host);
      lab._writeReaper();
      writeFileSync(join(hdir, "share", "authorized_keys"), `${lab.publicKey}\n`, { mode: 0o644 });
      writeFileSync(join(hdir, "share", "sshd_config"), sshdConfig(host, s));
      knownHosts.push(`${s.address} ${hostKey}`);
      run("ip", ["netns", "add", netns]);
      br("link", "add", `h${i}`, "type", "veth", "peer", "name", "eth0", "netns", netns);
      br("link", "set", `h${i}`, "master", "br0", "up");
      run("ip", ["-n", netns, "addr", "add", `${s.address}/24`, "dev", "eth0"]);
      run("ip", ["-n", netns, "link", "set", "eth0", "up"]);
      run("ip", ["-n", netns, "link", "set", "lo", "up"]);
      run("ip", ["route", "add", `${s.address}/32`, "dev", lab.adminLink, "src", adminAddress]);
    });
    writeFileSync(lab.knownHostsPath, knownHosts.join("\n") + "\n");
    await Promise.all(lab.hosts.map((h, i) => h._start(hostSetupScript(h, specs[i], uidBase))));
    // sshd is up when it answers.
    await Promise.all(lab.hosts.map((h, i) => waitForSsh(lab, h, !specs[i].sshAllowFrom)));
    return lab;
  } catch (e) {
    lab.cleanupSync();
    throw e;
  }
}

async function waitForSsh(lab: Lab, h: LabHost, direct: boolean): Promise<void> {
  const deadline = Date.now() + 15000;
  let last = "";
  while (Date.now() < deadline) {
    const r = await h.exec(`[ -f /run/sshd.pid ] && kill -0 "$(cat /run/sshd.pid)"`);
    if (r.code === 0 && !direct) {
      const banner = await h.exec(`nc -w 2 ${h.address} 22 </dev/null | head -c 4`);
      if (banner.stdout === "SSH-") return;
      last = banner.stderr;
    } else if (r.code === 0) {
      const probe = await new Promise<{ code: number; stderr: string }>((res) => {
        const c = spawn("ssh", [...lab.sshArgs(h, "root", 3), "true"], { stdio: ["ignore", "ignore", "pipe"] });
        let err = "";
        c.stderr!.setEncoding("utf8").on("data", (d) => (err += d));
        c.on("close", (code) => res({ code: code ?? 255, stderr: err }));
      });
      if (probe.code === 0) return;
      last = probe.stderr;
    }
    await new Promise((r2) => setTimeout(r2, 100));
  }
  const log = existsSync(join(h.dir, "share", "sshd.log")) ? readFileSync(join(h.dir, "share", "sshd.log"), "utf8") : "";
  throw new Error(`lab host ${h.name}: sshd did not come up: ${last.trim()} ${log.trim()}`);
}

/** The SSH logins a host's sshd accepted so far, oldest first, from its own log. */
export function sshdAccepted(host: LabHost): Array<{ user: string; from: string }> {
  const log = join(host.dir, "share", "sshd.log");
  if (!existsSync(log)) return [];
  const out: Array<{ user: string; from: string }> = [];
  for (const l of readFileSync(log, "utf8").split("\n")) {
    const m = /Accepted publickey for (\S+) from (\S+) port /.exec(l);
    if (m) out.push({ user: m[1], from: m[2] });
  }
  return out;
}
