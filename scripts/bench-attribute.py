#!/usr/bin/env python3
"""Where the CPU time of one process goes, from a perf.data recorded with DWARF call graphs
(scripts/bench-profile.sh): each sample is put in one category by its leaf frame and, for libc
leaves (memcpy, memset, malloc, ...), by the first caller outside libc. Copies, wipes and
allocations made by negio are further split by the negio function that asked for them.

    bench-attribute.py perf.data [label [START,END]]   (START,END: a perf --time range)
"""
import collections
import subprocess
import sys

MECH_DSOS = ("libk5crypto", "libcrypto", "gssntlmssp", "libkrb5", "libgssapi_krb5",
             "libkrb5support", "libcom_err")
HARNESS = ("st_", "srv_", "hs_", "hd_", "lt_", "tc_", "ts_", "bench_", "parse", "send_copy",
           "free_req", "stdin_ready", "main", "cli_bench")
COPY = ("memmove", "memcpy", "__memmove", "__memcpy")
WIPE = ("memset", "__memset", "explicit_bzero")
ALLOC = ("malloc", "free", "calloc", "realloc", "_int_malloc", "_int_free", "cfree",
         "malloc_consolidate", "unlink_chunk", "tcache", "sysmalloc", "__libc_malloc",
         "__libc_free", "_int_realloc", "__libc_calloc", "brk", "mmap", "munmap")


def frames_of(sample_lines):
    out = []
    for ln in sample_lines:
        ln = ln.strip()
        if not ln:
            continue
        parts = ln.split(None, 1)
        if len(parts) < 2:
            continue
        rest = parts[1]
        dso = ""
        if rest.endswith(")") and "(" in rest:
            i = rest.rfind("(")
            dso = rest[i + 1:-1]
            rest = rest[:i].strip()
        sym = rest.split("+0x")[0]
        out.append([sym, dso])
    # an inlined frame belongs to the object of the next real frame
    # (perf marks libc's string and allocation routines "inlined" too: they are libc's)
    for i in range(len(out) - 1, -1, -1):
        if out[i][1] == "inlined":
            if out[i][0].startswith(("__mem", "mem", "__GI_", "explicit_bzero", "_int_")):
                out[i][1] = "libc.so.6"
            else:
                out[i][1] = out[i + 1][1] if i + 1 < len(out) else ""
    return [tuple(f) for f in out]


def is_libc(dso):
    return "libc.so" in dso or "ld-linux" in dso


def negio_frame(frames, start):
    """The first frame at or after START that belongs to the negio binary."""
    for sym, dso in frames[start:]:
        if dso.endswith("/negio") or dso == "negio":
            return sym
    return None


def mech_caller(frames):
    """The GSS-API entry point and the negio function that called it."""
    gss = None
    for sym, d in frames:
        if sym.startswith("gss_") and "libgssapi" in d:
            gss = sym
        if d.endswith("/negio") or d == "negio":
            return "%s <- %s" % (gss or "?", sym) if gss else sym
    return gss


def classify(frames):
    if not frames:
        return ("unknown", None)
    leaf, dso = frames[0]
    if "kernel" in dso or dso.startswith("[k"):
        names = " ".join(s for s, _ in frames)
        if any(k in names for k in ("sys_write", "sys_writev", "sock_write_iter",
                                    "tcp_sendmsg", "__libc_write", "writev")):
            return ("kernel: send (write)", None)
        if any(k in names for k in ("sys_read", "sock_read_iter", "tcp_recvmsg", "__libc_read")):
            return ("kernel: receive (read)", None)
        if "exc_page_fault" in names:
            return ("kernel: page faults", None)
        if "epoll" in names:
            return ("kernel: event loop (epoll)", None)
        if any(k in names for k in ("futex", "nanosleep")):
            return ("kernel: threads, wake-ups", None)
        # any other system call: named after its entry point, detailed by who made it
        for sym, _ in frames:
            for prefix in ("__x64_sys_", "__do_sys_", "__se_sys_", "ksys_"):
                if sym.startswith(prefix):
                    who = negio_frame(frames, 0)
                    return ("kernel: system call " + sym[len(prefix):], who)
        if "schedule" in names:
            return ("kernel: threads, wake-ups", None)
        return ("kernel: interrupts, softirq (loopback delivery), other", None)
    if any(m in dso for m in MECH_DSOS):
        return ("mechanism (GSS and its crypto)", mech_caller(frames))
    if is_libc(dso):
        # the first caller outside libc decides who asked for it
        caller_dso = None
        for sym, d in frames[1:]:
            if not is_libc(d):
                caller_dso = d
                break
        kind = "other libc"
        if any(leaf.startswith(c) for c in COPY):
            kind = "copies"
        elif any(leaf.startswith(w) for w in WIPE):
            kind = "wipes"
        elif any(leaf.startswith(a) for a in ALLOC):
            kind = "allocation"
        if caller_dso is not None and any(m in caller_dso for m in MECH_DSOS):
            return ("mechanism (GSS and its crypto)", mech_caller(frames))
        if caller_dso is not None and "libuv" in caller_dso:
            return ("libuv", None)
        who = negio_frame(frames, 1)
        if who is not None and who.startswith(HARNESS):
            return ("bench harness", None)
        # the negio function behind the libc call, past the generic buffer helpers
        detail = None
        for sym, d in frames[1:]:
            if (d.endswith("/negio") or d == "negio") and not sym.startswith(
                    ("negio__buf_", "wipe", "explicit_bzero")):
                detail = sym
                break
        first = negio_frame(frames, 1)
        if first is not None and first.startswith("negio__buf_"):
            detail = "%s <- %s" % (first, detail)
        return ("negio: " + kind, detail)
    if "libuv" in dso:
        return ("libuv", None)
    if dso.endswith("/negio") or dso == "negio":
        if leaf.startswith(HARNESS):
            return ("bench harness", None)
        return ("negio code", leaf)
    if "vdso" in dso:
        return ("clock (vdso)", None)
    return ("other: " + dso.split("/")[-1], None)


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    data = sys.argv[1]
    label = sys.argv[2] if len(sys.argv) > 2 else data
    cmd = ["perf", "script", "-i", data, "-F", "ip,sym,dso"]
    if len(sys.argv) > 3:
        cmd += ["--time", sys.argv[3]]
    p = subprocess.run(cmd, capture_output=True, text=True)
    cats = collections.Counter()
    details = collections.defaultdict(collections.Counter)
    total = 0
    cur = []
    for line in p.stdout.splitlines() + [""]:
        if line.strip() == "":
            if cur:
                c, d = classify(frames_of(cur))
                cats[c] += 1
                if d:
                    details[c][d] += 1
                total += 1
            cur = []
            continue
        cur.append(line)
    if total == 0:
        print("%s: no samples" % label)
        return 1
    print("%s: %d samples" % (label, total))
    for c, n in cats.most_common():
        print("  %5.1f%%  %s" % (100.0 * n / total, c))
        for d, m in details[c].most_common(4):
            if 100.0 * m / total >= 0.5:
                print("           %5.1f%%  %s" % (100.0 * m / total, d))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # piped into head
        sys.exit(0)
