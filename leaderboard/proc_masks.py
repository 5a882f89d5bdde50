"""Neutral files the sandbox binds over the host-wide counters of its ``/proc``.

A PID namespace gives the job a ``/proc`` of its own processes, but some of its files are the kernel's counters for
the whole host, in no namespace: the load (``loadavg``), free memory (``meminfo``, ``vmstat``, ``zoneinfo``,
``buddyinfo``), CPU, interrupt and disk time (``stat``, ``interrupts``, ``softirqs``, ``diskstats``, the idle time
in ``uptime``), stalls (``pressure/*``), the host's open files, inodes and AIO contexts (``sys/fs``), its
pseudo-terminals in use (``sys/kernel/pty/nr``: the operator's terminal sessions), its swap in use (``swaps``), the
kernel's slab and vmalloc use and timers (``slabinfo``, ``vmallocinfo``, ``timer_list``: mode 0400, but readable by
the job of a worker run as root) and, on a host that scales its CPUs' frequency, the ``cpu MHz`` of ``cpuinfo``. Sampled, they tell a job when the host, another job or the
scorer is busy. bwrap covers each with a read-only file (``--ro-bind-data``) of the same form: the counters zero,
what is static (the CPUs ``stat`` lists, the boot time) kept, and as memory the job's own limit, so libraries that
size themselves by it (glibc counts the CPUs of ``/proc/stat`` where ``/sys``, which the sandbox does not mount, is
missing) see what they saw. ``cpuinfo`` is kept but for its frequencies: torch reads it (its processors and APIC
ids; the flags are read too by other libraries).
"""
from __future__ import annotations

import os
from typing import Dict, List, Sequence, Tuple

PROC = "/proc"
#: Counters no library a model uses reads: covered by an empty file
EMPTIED = ("vmstat", "diskstats", "interrupts", "softirqs", "zoneinfo", "buddyinfo", "pagetypeinfo", "schedstat",
           "pressure/cpu", "pressure/io", "pressure/memory", "pressure/irq", "sys/fs/file-nr", "sys/fs/inode-nr",
           "sys/fs/dentry-state", "sys/fs/inode-state", "sys/fs/aio-nr", "sys/kernel/pty/nr", "swaps",
           # mode 0400, yet read by a job of a worker run as root (its user is root outside the namespace)
           "slabinfo", "vmallocinfo", "timer_list")
LOADAVG = b"0.00 0.00 0.00 1/1 1\n"
#: meminfo's fields that show the job's memory limit; Hugepagesize is the host's (static); every other field is 0
MEMORY_FIELDS = ("MemTotal", "MemFree", "MemAvailable")


def _read(name: str) -> str:
    with open(f"{PROC}/{name}") as handle:
        return handle.read()


def meminfo(host: str, memory_bytes: int) -> bytes:
    """``host``'s fields, each 0 but :data:`MEMORY_FIELDS` (the job's limit, at most the host's memory) and the huge
    page size."""
    fields = [(name, value.split()) for name, _, value in (line.partition(":") for line in host.splitlines())]
    total = next((int(parts[0]) for name, parts in fields if name == "MemTotal" and parts), memory_bytes // 1024)
    lines = []
    for name, parts in fields:
        if not parts:
            continue
        number = min(memory_bytes // 1024, total) if name in MEMORY_FIELDS else \
            int(parts[0]) if name == "Hugepagesize" else 0
        lines.append(f"{name + ':':<15} {number:>8}" + (" kB" if parts[1:] == ["kB"] else ""))
    return ("\n".join(lines) + "\n").encode()


def stat(host: str) -> bytes:
    """``host``'s lines with every counter 0 (as many as it has), but the boot time and one process running."""
    lines = []
    for line in host.splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "btime":
            lines.append(line)
        elif fields[0] == "procs_running":
            lines.append("procs_running 1")
        else:
            lines.append(" ".join([fields[0]] + ["0"] * (len(fields) - 1)))
    return ("\n".join(lines) + "\n").encode()


def uptime(host: str) -> bytes:
    """The host's uptime (``CLOCK_BOOTTIME`` tells it anyway), its CPUs' idle time 0."""
    return f"{host.split()[0]} 0.00\n".encode()


def cpuinfo(host: str) -> bytes:
    """``host``'s lines, but each ``cpu MHz`` (the frequency now, which follows the load where the host scales it) is
    half its processor's ``bogomips`` (twice the nominal MHz on x86, measured at boot), or 0.000 without one."""
    out = []
    for block in host.split("\n\n"):
        lines = block.split("\n")
        bogomips = next((line.partition(":")[2].strip() for line in lines
                         if line.partition(":")[0].strip().lower() == "bogomips"), "")
        try:
            nominal = f"{float(bogomips) / 2:.3f}"
        except ValueError:
            nominal = "0.000"
        out.append("\n".join(f"{line.partition(':')[0]}: {nominal}"
                             if line.partition(":")[0].strip().lower().startswith("cpu mhz") else line
                             for line in lines))
    return "\n\n".join(out).encode()


def masks(memory_bytes: int) -> Dict[str, bytes]:
    """Path in the sandbox -> what it reads there, for each host counter file this kernel has."""
    out = {f"{PROC}/loadavg": LOADAVG, f"{PROC}/meminfo": meminfo(_read("meminfo"), memory_bytes),
           f"{PROC}/stat": stat(_read("stat")), f"{PROC}/uptime": uptime(_read("uptime")),
           f"{PROC}/cpuinfo": cpuinfo(_read("cpuinfo"))}
    out.update({f"{PROC}/{name}": b"" for name in EMPTIED if os.path.exists(f"{PROC}/{name}")})
    return out


def bwrap_arguments(memory_bytes: int) -> Tuple[List[str], List[int]]:
    """bwrap's arguments binding :func:`masks` (to follow ``--proc /proc``) and the descriptors they read, which the
    caller passes to bwrap and closes once it has started."""
    argv, fds = [], []
    try:
        for path, content in masks(memory_bytes).items():
            fd = os.memfd_create("neurozoo-proc-mask", 0)
            fds.append(fd)
            os.write(fd, content)
            os.lseek(fd, 0, os.SEEK_SET)
            argv += ["--perms", "0444", "--ro-bind-data", str(fd), path]
    except BaseException:
        close(fds)
        raise
    return argv, fds


def close(fds: Sequence[int]) -> None:
    for fd in fds:
        os.close(fd)
