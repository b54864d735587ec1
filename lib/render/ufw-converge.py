# cdktf-k3s-kilo: converge ufw's user rules to one node's rule set in one pass.
#
# Run by the firewall step with the interpreter of the `ufw` script itself (ufw is Python 3), so
# ufw's own modules parse each rule, match it against the rules ufw holds and write its rules
# files: the files are what `ufw allow ...` one rule at a time would leave. They are then applied
# once, with `iptables-restore -n` / `ip6tables-restore -n` of the user chains (the same files ufw
# itself restores on a reload), instead of one ufw process per rule.
#
# argv[1]: path of the ufw script; argv[2]: the source list shared by the cluster's nodes (JSON).
# stdin: the node's rules as JSON:
#   {"sources": [[address, ...] or {"shared": [index, ...]}, ...], "rules": [[word, ...], ...],
#    "guard": {"ranges": [cidr, ...], "interfaces": [name, ...]}}
# where a rule's word may be an integer n: the rule is repeated once for every address of
# sources[n], in order; {"shared": [...]} is the shared list without the entries at those indices.
# Each rule carries the comment `cdktf-k3s-kilo:<16 hex>`, the sha256 of its words joined by
# spaces (the per-rule path computes the same tag). Rules whose comment starts with our prefix and
# whose tag is no longer wanted are deleted; every other rule is the operator's and is never
# modified or deleted.
#
# The guard (converge_guard below): kube-proxy DNATs Services by destination address alone and
# accepts the marked packets ahead of ufw's chains, so ufw cannot keep a neighbour that routes the
# cluster's ranges to this host's public address away from NodePorts on kilo0's address,
# ClusterIPs or pods. The guard drops, in the raw table (PREROUTING, before conntrack and kube-proxy's
# DNAT), every packet addressed to or claiming to come from the guarded ranges (pod, service and
# Kilo networks) unless it arrives on an interface that carries them (lo, kilo0, kube-bridge,
# tunl0). It lives in files of our own next to ufw's (a chain in iptables-restore form per address
# family, and an init script that loads it and adds one jump from PREROUTING), and ufw runs that
# script through a marked block in /etc/ufw/before.init on every start, stop and reload, boot
# included: iptables-restore alone cannot add a jump to a built-in chain without adding a copy on
# every reload. The node's uninstall removes all of it.
#
# ufw layout this depends on (read in ufw 0.36.2's backend_iptables.py, tested with it): the
# backend's `rules`/`rules6` lists, `_write_rules(v6)` and the iptables-restore files it writes
# (`files['rules']`, `files['rules6']`), `UFWRule.match`, and the parser's rule commands. Other
# ufw versions stop with a message before anything is changed.
import hashlib
import json
import os
import re
import subprocess
import sys

TAG_PREFIX = "cdktf-k3s-kilo:"
# ufw versions whose rules-file layout and internals this program was checked against.
KNOWN_VERSIONS = re.compile(r"^0\.36(\.[0-9]+)?$")
HOST = os.uname()[1]


def log(text):
    sys.stdout.write("cdktf-k3s-kilo [%s]: %s\n" % (HOST, text))


def fail(text):
    sys.stdout.flush()
    sys.stderr.write("cdktf-k3s-kilo [%s]: error: %s\n" % (HOST, text))
    sys.exit(1)


def warn(text):
    sys.stderr.write("cdktf-k3s-kilo [%s]: warning: %s\n" % (HOST, text))


def delete_command(text):
    """The command that deletes a rule shown as `ufw [route] ACTION ...` (its comment left out)."""
    text = re.sub(r" comment '[^']*'$", "", text)
    if text.startswith("ufw route "):
        return "ufw route delete " + text[len("ufw route "):]
    return "ufw delete " + text[len("ufw "):]


def port_ranges(text):
    """ufw's port text ("22", "2379:2380", "80,443") as [(first, last), ...]; None for any port."""
    if text in ("any", ""):
        return None
    out = []
    for part in text.split(","):
        first, _, last = part.partition(":")
        out.append((int(first), int(last or first)))
    return out


def traffic(x, profiles):
    """What a rule matches by protocol and destination port: [(protocol, ranges or None)], or None
    when it cannot be told (an application profile that does not resolve)."""
    if not x.dapp:
        return [(x.protocol, port_ranges(x.dport))]
    import ufw.applications
    try:
        out = []
        for spec in ufw.applications.get_ports(profiles[x.dapp]):
            ports, _, proto = spec.partition("/")
            out.append((proto or "any", port_ranges(ports)))
        return out
    except Exception:
        return None


def inside(inner, outer):
    """Every port of `inner` is in `outer` (None: every port)."""
    if outer is None:
        return True
    if inner is None:
        return False
    return all(any(lo >= a and hi <= b for a, b in outer) for lo, hi in inner)


def meet(p, q):
    if p is None or q is None:
        return True
    return any(lo <= b and a <= hi for lo, hi in p for a, b in q)


def network(text):
    import ipaddress
    return ipaddress.ip_network(text, strict=False)


def covers(x, r, profiles):
    """The operator's rule x matches all of the traffic of our rule r (same family)."""
    if x.forward != r.forward or x.direction != r.direction or x.interface_out != "" or x.sport != "any":
        return False
    if x.interface_in not in ("", r.interface_in):
        return False
    if not (network(x.src).supernet_of(network(r.src)) and network(x.dst).supernet_of(network(r.dst))):
        return False
    alts = traffic(x, profiles)
    return alts is not None and any((p == "any" or p == r.protocol) and inside(port_ranges(r.dport), rng) for p, rng in alts)


def opens(x, r, profiles):
    """The operator's rule x lets in from anywhere (or nearly) some traffic that our rule r keeps
    to one source: x's source is wide where r's is narrow, for an overlapping protocol and port
    (on every interface or one: either way that port is open to more than our sources). Only our port rules on every interface count (SSH, the API, the kubelet,
    etcd, WireGuard); the rules bound to Kilo's interfaces are about pods and peers, not ports."""
    if r.interface_in != "" or r.dport == "any":
        return False
    if x.forward != r.forward or x.direction != r.direction or x.sport != "any":
        return False
    xs, rs = network(x.src), network(r.src)
    wide = 8 if xs.version == 4 else 32
    if xs.prefixlen >= wide or rs.prefixlen < wide:
        return False
    alts = traffic(x, profiles)
    return alts is not None and any((p == "any" or r.protocol == "any" or p == r.protocol) and meet(port_ranges(r.dport), rng) for p, rng in alts)


def ufw_version(path):
    try:
        with open(path) as f:
            m = re.search(r'^version = "([^"]+)"', f.read(), re.M)
    except OSError:
        return None
    return m.group(1) if m else None


def wanted_rules(data, shared):
    """The node's rules, in order, as (words, tag)."""
    out = []
    # A source list {"shared": [i, ...]} is the shared list without those indices.
    sources = []
    for s in data.get("sources", []):
        if isinstance(s, dict):
            skip = set(s["shared"])
            s = [w for k, w in enumerate(shared) if k not in skip]
        sources.append(s)
    for entry in data.get("rules", []):
        lists = [w for w in entry if isinstance(w, int)]
        if not lists:
            expanded = [entry]
        else:
            i = next(k for k, w in enumerate(entry) if isinstance(w, int))
            expanded = [entry[:i] + [s] + entry[i + 1:] for s in sources[entry[i]]]
        for words in expanded:
            for w in words:
                # ufw's words never hold blanks or control characters; a value from Terraform that
                # does is refused here rather than split into other words.
                if not isinstance(w, str) or w == "" or not w.isprintable() or any(c.isspace() for c in w):
                    fail("ufw refused the rule: invalid word %s in: ufw %s" % (json.dumps(w), " ".join(map(str, words))))
            spec = " ".join(words)
            out.append((words, TAG_PREFIX + hashlib.sha256(spec.encode()).hexdigest()[:16]))
    return out

GUARD_CHAIN = "cdktf-k3s-kilo-guard"
GUARD_INIT_NAME = "cdktf-k3s-kilo-guard.init"
GUARD_RULES_NAME = {False: "cdktf-k3s-kilo-guard.rules", True: "cdktf-k3s-kilo-guard6.rules"}
HOOK_BEGIN = "# BEGIN cdktf-k3s-kilo guard"
HOOK_END = "# END cdktf-k3s-kilo guard"
# ufw's own template of before.init (it does nothing); a before.init that is this, or absent, may be
# made executable. Anything else that is not executable is the operator's, and stays as it is.
STOCK_BEFORE_INIT = "/usr/share/ufw/before.init"

# Run by ufw-init (through before.init) as `cdktf-k3s-kilo-guard.init start|stop|status|flush-all`.
GUARD_INIT = r"""#!/bin/sh
# cdktf-k3s-kilo guard: written by PeerFirewall's firewall step (ufw-converge.py), run by ufw from
# before.init on every start, stop and reload. Loads the raw-table chain of
# cdktf-k3s-kilo-guard.rules (IPv4) and cdktf-k3s-kilo-guard6.rules (IPv6) and jumps to it from
# PREROUTING, before conntrack and kube-proxy's DNAT: packets addressed to or claiming to come from
# the cluster's pod, service and mesh ranges are dropped unless they arrive on the interfaces that
# carry them. Do not edit: the next deploy rewrites it; the node's uninstall removes it.
set -eu
PATH=/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin
export PATH
CHAIN=cdktf-k3s-kilo-guard
DIR=$(dirname "$0")

# unload TOOL: remove every jump to the chain (at most 100: ours are one) and the chain itself.
unload() {
  n=0
  while [ "$n" -lt 100 ] && "$1" -w 10 -t raw -D PREROUTING -j "$CHAIN" 2>/dev/null; do
    n=$((n + 1))
  done
  if "$1" -w 10 -t raw -n -L "$CHAIN" >/dev/null 2>&1; then
    "$1" -w 10 -t raw -F "$CHAIN"
    "$1" -w 10 -t raw -X "$CHAIN"
  fi
}

# load TOOL FILE: (re)fill the chain from FILE in one transaction (the restore flushes a chain it
# declares), then add the jump unless it is there.
load() {
  if [ ! -s "$2" ]; then
    unload "$1"
    return 0
  fi
  "$1-restore" -w 10 -n <"$2"
  "$1" -w 10 -t raw -C PREROUTING -j "$CHAIN" 2>/dev/null || "$1" -w 10 -t raw -I PREROUTING 1 -j "$CHAIN"
}

has_ip6tables() {
  command -v ip6tables >/dev/null 2>&1 && ip6tables -w 10 -t raw -n -L PREROUTING >/dev/null 2>&1
}

case "${1:-}" in
  start)
    load iptables "$DIR/cdktf-k3s-kilo-guard.rules"
    if has_ip6tables; then
      load ip6tables "$DIR/cdktf-k3s-kilo-guard6.rules"
    elif [ -s "$DIR/cdktf-k3s-kilo-guard6.rules" ]; then
      echo "cdktf-k3s-kilo guard: ip6tables is unavailable, the IPv6 ranges are not guarded" >&2
      exit 1
    fi
    ;;
  stop|flush-all)
    unload iptables
    if has_ip6tables; then unload ip6tables; fi
    ;;
  *)
    ;;
esac
"""


def guard_hook(init_path):
    # Never fails before.init. ufw's init.d restart stops the firewall (policies ACCEPT) and, when
    # before.init fails, returns without starting it again: the host would be left open. `ufw
    # enable` and `ufw reload` would fail and write ENABLED=no, so ufw would stay off after the next
    # boot. A guard that cannot load is said on stderr (the journal at boot and under init.d; the
    # ufw command does not print it), and the firewall step loads it itself, failing there.
    return [HOOK_BEGIN + " (PeerFirewall: drops the cluster's ranges arriving off the mesh; removed by the node's uninstall)\n",
            "if [ -x %s ]; then %s \"${1:-}\" || echo \"cdktf-k3s-kilo: '%s ${1:-}' failed, so the guard is not as ufw's "
            "state says; ufw goes on. Fix the cause above, then run: %s ${1:-}\" >&2; fi\n" % (init_path, init_path, init_path, init_path),
            HOOK_END + "\n"]


def wanted_guard(data):
    """The guard's chain lines per family (v6: bool -> [line, ...]), from the rule data; fails on a bad value."""
    import ipaddress
    guard = data.get("guard")
    if not isinstance(guard, dict):
        fail("the rule data has no guard: this converge program and the rule data come from different versions")
    interfaces = guard.get("interfaces", [])
    for name in interfaces:
        if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9_.-]{1,15}$", name):
            fail("invalid interface name %s for the guard" % json.dumps(name))
    lines = {False: [], True: []}
    nets = {False: [], True: []}
    for r in guard.get("ranges", []):
        try:
            net = ipaddress.ip_network(r, strict=True)
        except (TypeError, ValueError):
            fail("the guard's range %s (pod, service or Kilo network) is not a CIDR block such as 10.42.0.0/16; "
                 "nothing was changed" % json.dumps(r))
        if net.prefixlen == 0:
            fail("the guard's range %s would drop every address arriving off the mesh; nothing was changed" % net)
        v6 = net.version == 6
        if str(net) not in nets[v6]:
            nets[v6].append(str(net))
    for v6 in (False, True):
        if not nets[v6]:
            continue
        lines[v6] = ["-A %s -i %s -j RETURN" % (GUARD_CHAIN, i) for i in interfaces]
        for n in nets[v6]:
            lines[v6].append("-A %s -d %s -j DROP" % (GUARD_CHAIN, n))
            lines[v6].append("-A %s -s %s -j DROP" % (GUARD_CHAIN, n))
    return lines


def write_if_changed(path, text, mode):
    """Write `text` to `path` (atomically, with `mode`) unless it already holds it; True when written."""
    try:
        with open(path) as f:
            same = f.read() == text
        if same and (os.stat(path).st_mode & 0o7777) == mode:
            return False
    except FileNotFoundError:
        pass
    tmp = path + ".cdktf-k3s-kilo.tmp"
    # A leftover of an interrupted run (or anything planted there) goes; the new file is ours alone.
    if os.path.lexists(tmp):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), mode)
        f.write(text.encode())  # a buffered write writes every byte or raises
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return True


def check_hook(ufw_dir):
    """Fail, before anything changes, when before.init cannot carry the hook."""
    path = os.path.join(ufw_dir, "before.init")
    if not os.path.exists(path):
        return
    with open(path) as f:
        text = f.read()
    if not text.startswith("#!"):
        fail("%s does not start with a #! line, so the guard's hook cannot be added to it; nothing was changed. "
             "Give it one (#!/bin/sh) and deploy again" % path)
    if not os.access(path, os.X_OK) and strip_hook(text) != stock_before_init():
        fail("%s is not executable and is not ufw's template, so ufw does not run it and PeerFirewall will not "
             "start running your content; nothing was changed. Make it executable if it should run "
             "(chmod 0750 %s), or restore ufw's template (cp %s %s), and deploy again" % (path, path, STOCK_BEFORE_INIT, path))


def stock_before_init():
    try:
        with open(STOCK_BEFORE_INIT) as f:
            return f.read()
    except OSError:
        return None


def strip_hook(text):
    out, inside = [], False
    for line in text.splitlines(True):
        if line.startswith(HOOK_BEGIN):
            inside = True
        elif inside and line.rstrip("\n") == HOOK_END:
            inside = False
        elif not inside:
            out.append(line)
    return "".join(out)


def converge_guard(b, ufw_dir, lines):
    """Make the guard's files, hook and (when ufw runs) chains what `lines` says; returns the changes."""
    changes = 0
    init_path = os.path.join(ufw_dir, GUARD_INIT_NAME)
    for v6 in (False, True):
        path = os.path.join(ufw_dir, GUARD_RULES_NAME[v6])
        if lines[v6]:
            text = ("# cdktf-k3s-kilo guard (PeerFirewall), loaded by %s; do not edit, the next deploy rewrites it\n"
                    "*raw\n:%s - [0:0]\n%s\nCOMMIT\n" % (GUARD_INIT_NAME, GUARD_CHAIN, "\n".join(lines[v6])))
            if write_if_changed(path, text, 0o640):
                log("guard: wrote %s" % path)
                changes += 1
        elif os.path.exists(path):
            os.remove(path)
            log("guard: removed %s (no %s ranges)" % (path, "IPv6" if v6 else "IPv4"))
            changes += 1
    if write_if_changed(init_path, GUARD_INIT, 0o750):
        log("guard: wrote %s" % init_path)
        changes += 1

    # The hook: right after the #! line of before.init, which ufw-init runs when it is executable.
    hook_path = os.path.join(ufw_dir, "before.init")
    if os.path.exists(hook_path):
        with open(hook_path) as f:
            text = f.read()
        mode = os.stat(hook_path).st_mode & 0o7777
    else:
        text, mode = "#!/bin/sh\n", 0o640
    rest = strip_hook(text)
    first, _, tail = rest.partition("\n")
    wanted = first + "\n" + "".join(guard_hook(init_path)) + tail
    if write_if_changed(hook_path, wanted, mode | 0o700):
        log("guard: hooked into %s" % hook_path)
        changes += 1

    # Running chains: loaded now when ufw runs (when it does not, enabling it runs the hook).
    if b.is_enabled():
        stale = False
        for v6 in (False, True):
            if v6 and not b.use_ipv6():
                continue
            exe = "ip6tables" if v6 else "iptables"
            chain = subprocess.run([exe, "-w", "10", "-t", "raw", "-S", GUARD_CHAIN], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            running = chain.stdout.decode().splitlines() if chain.returncode == 0 else None
            pre = subprocess.run([exe, "-w", "10", "-t", "raw", "-S", "PREROUTING"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            jumps = pre.stdout.decode().splitlines().count("-A PREROUTING -j %s" % GUARD_CHAIN)
            if lines[v6]:
                stale = stale or running != ["-N %s" % GUARD_CHAIN] + lines[v6] or jumps != 1
            else:
                stale = stale or running is not None or jumps != 0
        if stale:
            res = subprocess.run([init_path, "start"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if res.returncode != 0:
                fail("could not load the guard (%s start): %s" % (init_path, res.stdout.decode(errors="replace").strip()))
            log("guard: loaded the raw-table chain %s" % GUARD_CHAIN)
            changes += 1
    return changes


def main():
    ufw_path = sys.argv[1]
    version = ufw_version(ufw_path)
    if version is None or not KNOWN_VERSIONS.match(version):
        fail("ufw %s at %s: PeerFirewall's converge writes ufw's rules files itself and knows their layout "
             "only in ufw 0.36 (Debian 11/12, Ubuntu 20.04-24.04); nothing was changed. Install ufw 0.36 "
             "or leave this host out of PeerFirewall's nodes" % (version or "of unknown version", ufw_path))
    # ufw checks the permissions of the program it runs as (argv[0]): name the real one.
    sys.argv[0] = ufw_path
    try:
        import gettext
        import ufw.common
        import ufw.frontend
        import ufw.parser
        import ufw.util
        gettext.install(ufw.common.programName)
        UFWError = ufw.common.UFWError
    except Exception as e:  # an installation we do not understand
        fail("cannot load ufw's Python modules (%s); nothing was changed" % e)

    data = json.load(sys.stdin)
    wanted = wanted_rules(data, json.loads(sys.argv[2]) if len(sys.argv) > 2 else [])
    wanted_tags = set(tag for _, tag in wanted)
    guard = wanted_guard(data)

    lock = ufw.util.create_lock(lockfile="/run/ufw.lock")
    try:
        try:
            ui = ufw.frontend.UFWFrontend(False)
        except UFWError as e:
            fail("ufw: %s" % e.value)
        b = ui.backend
        for attr in ("rules", "rules6", "files", "_write_rules", "_get_rules_from_formatted", "use_ipv6", "is_enabled", "initcaps",
                     "iptables_restore", "ip6tables_restore"):
            if not hasattr(b, attr):
                fail("ufw %s lacks %s: its layout is not the one PeerFirewall's converge knows; nothing was changed" % (version, attr))

        # ufw's IPv6 switch: with IPV6=no ufw never loads ip6tables rules, so IPv6 reaches every
        # port. Stop, unless the kernel has no IPv6 at all.
        if not b.use_ipv6() and os.path.exists("/proc/net/if_inet6"):
            fail("IPV6=no in /etc/default/ufw: ufw leaves IPv6 traffic unfiltered on this host, so PeerFirewall "
                 "cannot protect it. Set IPV6=yes in /etc/default/ufw, run `ufw reload`, and deploy again")

        ufw_dir = os.path.dirname(b.files["before_rules"])
        check_hook(ufw_dir)

        parser = ufw.parser.UFWParser()
        for action in ("allow", "limit", "deny", "reject"):
            parser.register_command(ufw.parser.UFWCommandRule(action))
            parser.register_command(ufw.parser.UFWCommandRouteRule(action))

        def ours(r):
            return r.comment != "" and ufw.util.hex_decode(r.comment).startswith(TAG_PREFIX)

        def shown(r):
            """A rule as `ufw show added` prints it."""
            if r.forward:
                text = "route " + ufw.parser.UFWCommandRouteRule.get_command(r)
            else:
                text = ufw.parser.UFWCommandRule.get_command(r)
            return "ufw " + text

        def key(r):
            """The fields UFWRule.match compares before action and comment: an index, so each
            wanted rule is matched against its few candidates instead of every rule (O(n))."""
            return (r.dport, r.sport, r.protocol, r.src, r.dst, r.v6, r.dapp, r.sapp,
                    r.interface_in, r.interface_out, r.direction, r.forward)

        lists = {False: list(b.rules), True: list(b.rules6)}
        index = {}
        for v6 in (False, True):
            for x in lists[v6]:
                index.setdefault(key(x), []).append(x)
        tagged = {False: set(), True: set()}
        for v6 in (False, True):
            for x in lists[v6]:
                if ours(x):
                    tagged[v6].add(ufw.util.hex_decode(x.comment))
        changed = {False: False, True: False}
        # ufw reloads both families' user chains from their files whenever a rule is deleted or
        # modified (backend_iptables.set_rule -> _reload_user_rules), and only appends to the
        # running chains when one is added. Mirror that, so the running tables end up the same
        # as after the same changes made one `ufw` command at a time.
        reload_both = False
        appended = {False: [], True: []}
        added, conflicts, kept = [], [], []
        for words, tag in wanted:
            # Fast path for an unchanged rule: its tag (a hash of its words) is in every family ufw
            # files it under (a source address picks one; `from any` means both).
            source = words[words.index("from") + 1] if "from" in words else "any"
            expect = [False, True] if source == "any" else [":" in source]
            if all(tag in tagged[v6] or (v6 and not b.use_ipv6()) for v6 in expect):
                continue
            argv = (["rule"] if words[0] != "route" else []) + list(words) + ["comment", tag]
            try:
                pr = parser.parse_command(argv)
                rule = pr.data["rule"]
                iptype = pr.data["iptype"]
            except UFWError as e:
                fail("ufw refused the rule: ufw %s (%s)" % (" ".join(words), e.value))
            except Exception:
                fail("ufw refused the rule: ufw %s" % " ".join(words))
            if iptype == "both":
                families = [False, True] if b.use_ipv6() else [False]
            elif iptype == "v6":
                if not b.use_ipv6():
                    fail("ufw refused the rule: ufw %s (IPv6 is off in ufw)" % " ".join(words))
                families = [True]
            else:
                families = [False]
            new_here = False
            for v6 in families:
                r = rule.dup_rule()
                r.set_v6(v6)
                try:
                    r.normalize()
                except UFWError as e:
                    fail("ufw refused the rule: ufw %s (%s)" % (" ".join(words), e.value))
                current = lists[v6]
                state = "missing"
                for x in index.get(key(r), []):
                    m = ufw.common.UFWRule.match(x, r)
                    if m == 0:
                        state = "present"
                        break
                    if m < 0:
                        if ours(x):
                            # Our own rule for the same traffic under other words: retag it in place,
                            # as `ufw` would.
                            current[current.index(x)] = r
                            state = "retagged"
                        elif x.action in ("deny", "reject") and r.action in ("allow", "limit"):
                            conflicts.append("%s%s (wanted: ufw %s)" % (shown(x), " (v6)" if v6 else "", " ".join(words)))
                            state = "conflict"
                        else:
                            kept.append("%s (covers: ufw %s)" % (shown(x), " ".join(words)))
                            state = "operator"
                        break
                if state == "missing":
                    if r.action == "limit":
                        b.initcaps()
                        if not b.caps["limit"]["6" if v6 else "4"]:
                            continue  # ufw itself skips a rate limit the kernel cannot do
                    current.append(r)
                    appended[v6].append(r)
                    index.setdefault(key(r), []).append(r)
                if state in ("missing", "retagged"):
                    changed[v6] = True
                    new_here = True
                if state == "retagged":
                    reload_both = True
            if new_here:
                added.append(" ".join(words))
        # The operator's broader rules, against ours as they now stand (those already there and
        # those about to be appended): a deny or reject that covers one of our rules and comes
        # before it blocks that traffic (ufw's first match wins); an allow from anywhere on a port
        # we open only to some sources keeps the host open there.
        try:
            import ufw.applications
            profiles = ufw.applications.get_profiles(b.files["apps"])
        except Exception:
            profiles = {}
        words_by_tag = dict((tag, "ufw " + " ".join(words)) for words, tag in wanted)
        blocking = {}
        opening = {}
        for v6 in (False, True):
            denies = []
            operator_allows = [x for x in lists[v6] if not ours(x) and x.action in ("allow", "limit")]
            for x in lists[v6]:
                if not ours(x):
                    if x.action in ("deny", "reject"):
                        denies.append(x)
                    continue
                tag = ufw.util.hex_decode(x.comment)
                if tag not in words_by_tag or x.action not in ("allow", "limit"):
                    continue
                for d in denies:
                    if covers(d, x, profiles):
                        hit = blocking.setdefault(shown(d), [])
                        if words_by_tag[tag] not in hit:
                            hit.append(words_by_tag[tag])
                        break
                for a in operator_allows:
                    if shown(a) not in opening and opens(a, x, profiles):
                        opening[shown(a)] = (x, words_by_tag[tag])
        for text, hit in blocking.items():
            more = ", and %d more of the cluster's rules" % (len(hit) - 1) if len(hit) > 1 else ""
            conflicts.append("%s (blocks: %s%s; remove it: %s)" % (text, hit[0], more, delete_command(text)))
        for text, (x, mine) in opening.items():
            what = "%s/%s" % (x.dport, x.protocol) if x.protocol != "any" else ("port %s" % x.dport if x.dport != "any" else "every port")
            warn("the operator's own rule `%s` opens %s to anywhere, where PeerFirewall allows only certain sources (%s): this host stays "
                 "open there. If PeerFirewall's rules should decide, remove it: %s" % (text, what, mine, delete_command(text)))
        if conflicts:
            fail("the operator's own ufw rule(s) deny traffic this cluster needs; PeerFirewall does not override "
                 "them and changed nothing: " + "; ".join(conflicts) +
                 ". Delete or narrow the rule (ufw delete ...) if the cluster should have this traffic, "
                 "or leave the host out of PeerFirewall's nodes")

        deleted = []
        for v6 in (False, True):
            keep = []
            for x in lists[v6]:
                if ours(x) and ufw.util.hex_decode(x.comment) not in wanted_tags:
                    changed[v6] = True
                    reload_both = True
                    text = shown(x)
                    if text not in deleted:
                        deleted.append(text)
                    continue
                keep.append(x)
            lists[v6] = keep

        for text in kept:
            log("left alone, the operator's rule already covers ours: %s" % text)
        for text in added:
            log("added: ufw %s" % text)
        for text in deleted:
            log("deleted stale rule: %s" % text)

        b.rules, b.rules6 = lists[False], lists[True]
        for v6 in (False, True):
            if changed[v6]:
                try:
                    b._write_rules(v6)
                except UFWError as e:
                    fail("could not write ufw's rules file: %s" % e.value)
        if b.is_enabled():
            for v6 in (False, True):
                exe = b.ip6tables_restore if v6 else b.iptables_restore
                if reload_both and (not v6 or b.use_ipv6()):
                    # The whole user chain set of this family in one transaction: the restore
                    # flushes every chain the file declares and refills it, so the new rules are in
                    # before the stale ones are gone, and established sessions never see a gap.
                    with open(b.files["rules6" if v6 else "rules"], "rb") as f:
                        text = f.read()
                elif appended[v6]:
                    # Only additions: append their iptables rules to the running chains, as ufw
                    # does per rule, in one restore without chain declarations (nothing flushed).
                    prefix = "ufw6" if v6 else "ufw"
                    lines = ["*filter\n"]
                    for r in appended[v6]:
                        suffix = "forward" if r.forward else ("output" if r.direction == "out" else "input")
                        lines += b._get_rules_from_formatted("-A %s-user-%s %s\n" % (prefix, suffix, r.format_rule()), prefix, suffix)
                    lines.append("COMMIT\n")
                    text = "".join(lines).encode()
                else:
                    continue
                res = subprocess.run([exe, "-n"], input=text, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                if res.returncode != 0:
                    fail("%s -n failed: %s" % (exe, res.stdout.decode(errors="replace").strip()))
        guard_changes = converge_guard(b, ufw_dir, guard)
        # The last line is for the calling script: how many rules (and guard parts) changed.
        sys.stdout.write("%d\n" % (len(added) + len(deleted) + guard_changes))
    finally:
        ufw.util.release_lock(lock)


if __name__ == "__main__":
    main()
