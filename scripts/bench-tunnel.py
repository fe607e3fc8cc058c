#!/usr/bin/env python3
"""negio bench --only tunnel: negio tunnel beside stunnel, with Redis (docs/PERFORMANCE.md,
"The tunnel against stunnel").

One run measures, for each path to one redis-server on loopback,
  direct                       redis-benchmark -> redis
  stunnel                      -> stunnel client -> TLS 1.3 -> stunnel server -> redis
  negio none|sign|seal         -> negio tunnel client -> Kerberos -> negio tunnel server -> redis
  negio tls-negotiate          -> the same inside TLS 1.3 (Kerberos bound to the channel)
three things with redis-benchmark: ops/s (GET of 64 bytes, 50 connections), the latency of one
connection's requests one at a time (p50; "added" is the p50 over direct's), and bulk throughput
(SET of 1 MB values, 4 connections); every figure also as a ratio to direct, and the targets of
issue 16 as ratios in the same run. Then 10,000 idle tunnels held through one tunnel server, with
the server's memory per tunnel.

  bench-tunnel.py NEGIO_BINARY [--quick|--full] [--json FILE] [--connections N]
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

procs = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start(cmd, log, env=None):
    f = open(log, "w")
    p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    procs.append(p)
    return p


def wait_port(port, limit=10.0):
    end = time.time() + limit
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("bench-tunnel: nothing listens on %d" % port)


def wait_line(path, pattern, limit=10.0):
    end = time.time() + limit
    rx = re.compile(pattern)
    while time.time() < end:
        try:
            for line in open(path):
                m = rx.search(line)
                if m:
                    return m
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("bench-tunnel: %s never said %s: %s" % (path, pattern, open(path).read()))


def tunnel(negio, d, name, side, args, env):
    log = os.path.join(d, name + ".log")
    p = start([negio, "tunnel", side, "--listen", "127.0.0.1:0", "--name", name,
               "--max-connections", "20000"] + args, log, env)
    m = wait_line(log, r"listening on 127\.0\.0\.1:(\d+),")
    return p, int(m.group(1))


def rss_kb(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_s(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def redis_benchmark(port, args):
    out = subprocess.run(["redis-benchmark", "-p", str(port), "--csv"] + args,
                         capture_output=True, text=True, timeout=600)
    rows = [l for l in out.stdout.splitlines() if l.startswith('"')]
    if len(rows) < 2:
        raise SystemExit("bench-tunnel: redis-benchmark %s: %s %s" % (args, out.stdout, out.stderr))
    head = [h.strip('"') for h in rows[0].split(",")]
    vals = [v.strip('"') for v in rows[1].split(",")]
    return dict(zip(head, vals))


def measure(port, q, direct_port):
    # the same small value under redis-benchmark's key for every path (the SET of 1 MB values of
    # the previous path would make GET move megabytes)
    subprocess.run(["redis-cli", "-p", str(direct_port), "SET", "key:__rand_int__", "x" * 64],
                   check=True, capture_output=True)
    ops = redis_benchmark(port, ["-t", "get", "-d", "64", "-c", "50", "-n", str(q["ops_n"])])
    lat = redis_benchmark(port, ["-t", "get", "-d", "64", "-c", "1", "-n", str(q["lat_n"])])
    bulk = redis_benchmark(port, ["-t", "set", "-d", str(q["bulk_size"]), "-c", "4",
                                  "-n", str(q["bulk_n"])])
    return {
        "ops_per_s": float(ops["rps"]),
        "p50_ms": float(lat["p50_latency_ms"]),
        "bulk_mb_per_s": float(bulk["rps"]) * q["bulk_size"] / 1e6,
    }


def stunnel_conf(d, name, lines):
    path = os.path.join(d, name + ".conf")
    with open(path, "w") as f:
        f.write("foreground = yes\npid =\nsyslog = no\ndebug = 3\n" + "\n".join(lines) + "\n")
    return path


def kerberos_seal_limits(negio, env):
    """The bench's own limits for Kerberos seal at the largest message size, from negio bench
    --only gss --csv: MIT's gss_wrap + gss_unwrap in one process (the "Kerberos seal limit" of
    issue 16), and the "openssl wrap" line, the same crypto on OpenSSL EVP alone, which is what
    the tunnel runs since the Kerberos fast path (issue 18). Returns {mech: MB/s}."""
    out = subprocess.run([negio, "bench", "--only", "gss", "--csv", "--no-progress"],
                         capture_output=True, text=True, env=env, timeout=600)
    best = {}
    for row in out.stdout.splitlines():
        f = row.split(",")
        if len(f) >= 6 and f[0] == "gss" and f[1] in ("kerberos", "kerberos-openssl") and \
           f[2] == "seal" and f[4] == "throughput" and f[3] and \
           int(f[3]) > best.get(f[1], (-1, None))[0]:
            best[f[1]] = (int(f[3]), float(f[5]))
    return {mech: v[1] for mech, v in best.items()}


def idle_tunnels(negio, d, env, redis_port, n):
    """N tunnels held open through one tunnel server; its RSS before and after."""
    srv, sport = tunnel(negio, d, "idle-s", "server",
                        ["--backend", "127.0.0.1:%d" % redis_port, "--protect", "seal"], env)
    cli, cport = tunnel(negio, d, "idle-c", "client",
                        ["--connect", "127.0.0.1:%d" % sport, "--spn", "negio@localhost",
                         "--mech", "kerberos"], env)
    # one tunnel first, so that the loaded libraries and the credentials are in the baseline
    s0 = socket.create_connection(("127.0.0.1", cport))
    s0.sendall(b"PING\r\n")
    s0.recv(16)
    time.sleep(0.3)
    base = rss_kb(srv.pid)
    t0 = time.time()
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", cport))
        socks.append(s)
        if i % 500 == 499:  # each tunnel proven end to end, in batches
            for t in socks[i - 499:i + 1]:
                t.sendall(b"PING\r\n")
            for t in socks[i - 499:i + 1]:
                if not t.recv(16).startswith(b"+PONG"):
                    raise SystemExit("bench-tunnel: an idle tunnel did not answer")
    rest = n % 500
    for t in socks[n - rest:]:
        t.sendall(b"PING\r\n")
    for t in socks[n - rest:]:
        t.recv(16)
    took = time.time() - t0
    time.sleep(0.5)
    held = rss_kb(srv.pid)
    cli_rss = rss_kb(cli.pid)
    for s in socks:
        s.close()
    s0.close()
    srv.send_signal(signal.SIGTERM)
    cli.send_signal(signal.SIGTERM)
    srv.wait(30)
    cli.wait(30)
    return {"tunnels": n, "seconds_to_open": round(took, 2),
            "server_rss_kb_before": base, "server_rss_kb_after": held,
            "server_bytes_per_tunnel": round((held - base) * 1024 / n),
            "client_rss_kb_after": cli_rss}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("negio")
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--realm-dir")
    a = ap.parse_args()
    for prog in ("redis-server", "redis-benchmark", "stunnel4", "openssl"):
        if shutil.which(prog) is None:
            raise SystemExit("bench-tunnel: %s is not installed (scripts/deps.sh)" % prog)
    q = {"ops_n": 200000 if a.full else 50000, "lat_n": 20000 if a.full else 5000,
         "bulk_size": 1000000, "bulk_n": 600 if a.full else 200}
    # the tunnel client and server each hold two descriptors per tunnel (and the tunnels take
    # the hard limit as their own): raise it when allowed (root), else what there is
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, 2 * a.connections + 1024)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, hard), max(want, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, want), hard))
    negio = os.path.abspath(a.negio)
    d = tempfile.mkdtemp(prefix="negio-bench-tunnel-")
    env = dict(os.environ)
    realm = a.realm_dir or os.path.join(d, "realm")
    try:
        if not os.path.exists(os.path.join(realm, "env")):
            subprocess.run([negio, "realm", "start", realm], check=True, capture_output=True)
        for line in open(os.path.join(realm, "env")):
            m = re.match(r"export (\w+)=(.*)", line.strip())
            if m:
                env[m.group(1)] = m.group(2)
        rport = free_port()
        start(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--maxclients", str(a.connections + 1000), "--dir", d],
              os.path.join(d, "redis.log"))
        wait_port(rport)
        paths = {"direct": rport}
        # stunnel: TLS 1.3 with a P-256 certificate, the suite both sides pick by default
        key, crt = os.path.join(d, "st.key"), os.path.join(d, "st.crt")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt,
                        "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True)
        sp, cp = free_port(), free_port()
        start(["stunnel4", stunnel_conf(d, "stunnel-s", [
            "[s]", "accept = 127.0.0.1:%d" % sp, "connect = 127.0.0.1:%d" % rport,
            "cert = " + crt, "key = " + key, "sslVersionMin = TLSv1.3"])],
            os.path.join(d, "stunnel-s.log"))
        start(["stunnel4", stunnel_conf(d, "stunnel-c", [
            "[c]", "client = yes", "accept = 127.0.0.1:%d" % cp,
            "connect = 127.0.0.1:%d" % sp, "sslVersionMin = TLSv1.3"])],
            os.path.join(d, "stunnel-c.log"))
        wait_port(sp)
        wait_port(cp)
        paths["stunnel"] = cp
        server_pids = {}
        for level in ("none", "sign", "seal"):
            s, spt = tunnel(negio, d, level + "-s", "server",
                            ["--backend", "127.0.0.1:%d" % rport, "--protect", level,
                             "--min-protect", level], env)
            c, cpt = tunnel(negio, d, level + "-c", "client",
                            ["--connect", "127.0.0.1:%d" % spt, "--spn", "negio@localhost",
                             "--mech", "kerberos", "--protect", level, "--min-protect", level],
                            env)
            paths["negio " + level] = cpt
            server_pids["negio " + level] = (s.pid, c.pid)
        s, spt = tunnel(negio, d, "tls-s", "server",
                        ["--backend", "127.0.0.1:%d" % rport, "--tls-negotiate"], env)
        c, cpt = tunnel(negio, d, "tls-c", "client",
                        ["--connect", "127.0.0.1:%d" % spt, "--tls-negotiate", "--mech",
                         "kerberos"], env)
        paths["negio tls-negotiate"] = cpt
        results = {}
        for name, port in paths.items():
            sys.stderr.write("[tunnel] %s ...\n" % name)
            results[name] = measure(port, q, rport)
        direct = results["direct"]
        for name, r in results.items():
            r["ops_ratio"] = round(r["ops_per_s"] / direct["ops_per_s"], 3)
            r["bulk_ratio"] = round(r["bulk_mb_per_s"] / direct["bulk_mb_per_s"], 3)
            r["added_p50_ms"] = round(r["p50_ms"] - direct["p50_ms"], 3)
        limits = kerberos_seal_limits(negio, env)
        limit, limit_ossl = limits.get("kerberos"), limits.get("kerberos-openssl")
        st, tls, seal = results["stunnel"], results["negio tls-negotiate"], results["negio seal"]
        targets = {
            "tls_negotiate_ops_vs_stunnel": round(tls["ops_per_s"] / st["ops_per_s"], 3),
            "tls_negotiate_bulk_vs_stunnel": round(tls["bulk_mb_per_s"] / st["bulk_mb_per_s"], 3),
            "seal_bulk_vs_kerberos_seal_limit":
                round(seal["bulk_mb_per_s"] / limit, 3) if limit else None,
            "kerberos_seal_limit_mb_per_s": limit,
            "seal_bulk_vs_openssl_wrap_limit":
                round(seal["bulk_mb_per_s"] / limit_ossl, 3) if limit_ossl else None,
            "openssl_wrap_limit_mb_per_s": limit_ossl,
            "added_p50_tls_negotiate_vs_stunnel":
                round(tls["added_p50_ms"] / st["added_p50_ms"], 3) if st["added_p50_ms"] > 0
                else None,
        }
        # one process holds two descriptors per tunnel: a hard limit below that caps the count
        limit_fds = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if 2 * a.connections + 100 > limit_fds:
            capped = (limit_fds - 100) // 2
            sys.stderr.write("[tunnel] the descriptor limit (%d, which this process may not "
                             "raise) holds %d tunnels per process, not %d\n"
                             % (limit_fds, capped, a.connections))
            a.connections = capped
        sys.stderr.write("[tunnel] %d idle tunnels ...\n" % a.connections)
        try:
            idle = idle_tunnels(negio, d, env, rport, a.connections)
        except (OSError, SystemExit) as e:
            for name in ("idle-s", "idle-c"):
                lines = [l for l in open(os.path.join(d, name + ".log")) if "close=clean" not in l]
                sys.stderr.write("".join(lines[-5:]))
            raise SystemExit("bench-tunnel: idle tunnels: %s" % e)
        report = {"paths": results, "targets": targets, "idle": idle,
                  "settings": q}
        print("negio tunnel against stunnel, redis-benchmark on loopback (one run; ratios to direct)")
        print("%-22s %12s %6s %10s %9s %12s %6s" % ("path", "GET ops/s", "x", "p50 ms",
                                                   "added", "SET 1MB MB/s", "x"))
        for name, r in results.items():
            print("%-22s %12.0f %6.2f %10.3f %9.3f %12.1f %6.2f" % (
                name, r["ops_per_s"], r["ops_ratio"], r["p50_ms"], r["added_p50_ms"],
                r["bulk_mb_per_s"], r["bulk_ratio"]))
        print("targets (issue 16):")
        print("  --tls-negotiate ops/s / stunnel's        %s (target >= 0.9)" %
              targets["tls_negotiate_ops_vs_stunnel"])
        print("  --tls-negotiate throughput / stunnel's   %s (target >= 0.9)" %
              targets["tls_negotiate_bulk_vs_stunnel"])
        print("  seal throughput / Kerberos seal limit    %s (MIT gss_wrap %s MB/s; target >= 0.8)"
              % (targets["seal_bulk_vs_kerberos_seal_limit"], limit))
        print("  seal throughput / openssl wrap limit     %s (the fast path's crypto, %s MB/s)"
              % (targets["seal_bulk_vs_openssl_wrap_limit"], limit_ossl))
        print("  added p50, --tls-negotiate / stunnel     %s (target <= 1.2)" %
              targets["added_p50_tls_negotiate_vs_stunnel"])
        print("idle: %d tunnels through one server: %d bytes of server RSS each, %d of client RSS "
              "in all (%.1f s to open; the descriptor limit is %d)"
              % (idle["tunnels"], idle["server_bytes_per_tunnel"], idle["client_rss_kb_after"],
                 idle["seconds_to_open"], resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(report, f, indent=1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        if not a.realm_dir:
            subprocess.run([negio, "realm", "stop", realm], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
