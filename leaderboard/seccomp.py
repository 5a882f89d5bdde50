"""The sandbox's seccomp filter, compiled by libseccomp (through ctypes) into the BPF program bwrap loads
(``--seccomp FD``) just before it runs the job's command.

It refuses, with EPERM, the system calls that reach kernel state outside every namespace of the job (see
leaderboard/SECURITY.md): the per-user keyrings (:data:`KEYRINGS`) and watches on the folders bound from the host
(:data:`WATCHES`); sockets other than unix ones (the job has no network, and a TCP connection over its loopback holds
megabytes of the host's memory in its buffers, in no process's resident size); io_uring (:data:`BYPASSES`);
System V IPC (:data:`SYSTEM_V`); kernel interfaces that exploits use (:data:`EXPLOIT_SURFACE`); unix socket queues that
hold more than the watchdog sees (:data:`DESCRIPTOR_PASSING`, datagram sockets, a listen backlog over
:data:`LISTEN_BACKLOG`); and enlarging a pipe (:data:`F_SETPIPE_SZ`). Anonymous memory
files (:data:`ANONYMOUS_FILES`) are refused with ENOSYS, the answer of a kernel without them, on which libraries fall
back to a file (libffi's closures, for one, to a file in the job's counted ``/tmp``). Where bwrap
cannot refuse nested user namespaces itself (``--disable-userns``, bwrap 0.8), it also refuses ``unshare`` and
``clone`` with ``CLONE_NEWUSER``, and ``clone3`` (whose flags lie in memory no filter can read) with ENOSYS, which
makes glibc fall back to ``clone``. A system call of another architecture (x32, i386) kills the process: libseccomp's
default for a filter made for the native one.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
from typing import Optional

KEYRINGS = ("add_key", "keyctl", "request_key")
WATCHES = ("inotify_init", "inotify_init1", "inotify_add_watch", "fanotify_init", "fanotify_mark")
#: io_uring's operations (sockets among them) are checked by no seccomp filter
BYPASSES = ("io_uring_setup",)
#: Kernel interfaces no model needs, with a long record of exploits (perf counters also time other jobs' code)
EXPLOIT_SURFACE = ("perf_event_open", "userfaultfd", "bpf")
#: System V IPC: a detached shared memory segment (and a message queue) is memory in no process and no mount
SYSTEM_V = ("shmget", "msgget", "semget")
#: Unix sockets whose queues hold more than the descriptors the watchdog sees, where it counts each socket at what one
#: buffer holds: sockets in flight (``sendmsg``'s SCM_RIGHTS: a socket sent and closed lives on in a queue, in no
#: process's descriptors: a job under a 128 MiB limit held 604 MiB so, unseen), a datagram socket's messages from many
#: closed senders (308 MiB in 7 sockets), and a listening socket's connections it never accepts, each keeping what its
#: closed client sent (604 MiB in one socket of backlog 4096). Refused: ``sendmsg`` (``send`` is ``sendto``), datagram
#: and sequenced-packet sockets, and a backlog over :data:`LISTEN_BACKLOG`, for which the watchdog counts a listening
#: socket's waiting connections (:func:`leaderboard.sandbox.open_files`). A connected stream socket holds at most
#: its peer's buffer, as counted.
DESCRIPTOR_PASSING = ("sendmsg", "sendmmsg")
#: listen()'s largest backlog: Python's own when none is given (``socket.listen()``; asyncio's servers ask 100,
#: multiprocessing's Manager 16, torch's shared-memory manager 10)
LISTEN_BACKLOG = 128
SOCK_TYPE_MASK = 0xF
QUEUED_SOCKET_TYPES = (2, 3, 5)  # SOCK_DGRAM, SOCK_RAW (a datagram socket in AF_UNIX), SOCK_SEQPACKET
#: fcntl's F_SETPIPE_SZ: a pipe enlarged to 1 MiB (the watchdog counts its default 64 KiB) until the host user's
#: ``fs.pipe-user-pages-soft`` (64 MiB, shared with every process of that user) is used up
F_SETPIPE_SZ = 1031
#: Memory files in no mount: a part mapped keeps a file alive after its descriptor is closed, in no process's resident
#: size (a job under a 128 MiB limit held 384 MiB so, unseen, without a cgroup)
ANONYMOUS_FILES = ("memfd_create", "memfd_secret")
#: Operators who cannot install libseccomp may run the sandbox without the filter by setting this to 1 (documented in
#: leaderboard/SECURITY.md); otherwise a sandbox without it refuses to run.
OPT_OUT = "NEUROZOO_SANDBOX_WITHOUT_SECCOMP"

SCMP_ACT_ALLOW = 0x7FFF0000
CLONE_NEWUSER = 0x10000000
SCMP_CMP_NE = 1
SCMP_CMP_GT = 6
SCMP_CMP_MASKED_EQ = 7
AF_UNIX = 1


def SCMP_ACT_ERRNO(code: int) -> int:  # noqa: N802 (libseccomp's name)
    return 0x00050000 | (code & 0xFFFF)


class _ArgCmp(ctypes.Structure):  # struct scmp_arg_cmp
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


@functools.lru_cache(maxsize=None)
def _library_name() -> Optional[str]:
    return ctypes.util.find_library("seccomp")  # runs ldconfig: once per process


def library() -> Optional[ctypes.CDLL]:
    name = _library_name()
    if name is None:
        return None
    lib = ctypes.CDLL(name, use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


def opted_out() -> bool:
    return os.environ.get(OPT_OUT) == "1"


def problem() -> Optional[str]:
    """None if the filter can be made (or the operator opted out of it), else why not."""
    if opted_out() or library() is not None:
        return None
    return (f"libseccomp is not installed (Debian/Ubuntu: apt-get install libseccomp2), so the sandbox cannot refuse "
            f"the kernel's keyrings and file watches; set {OPT_OUT}=1 to run the sandbox without that filter")


def filter_fd(refuse_userns: bool) -> int:
    """A file descriptor (a memfd at offset 0) holding the compiled filter, for ``bwrap --seccomp FD``."""
    lib = library()
    if lib is None:
        raise OSError(problem())
    context = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not context:
        raise OSError("seccomp_init failed")
    try:
        rules = [(name, errno.EPERM, None) for name in
                 KEYRINGS + WATCHES + BYPASSES + SYSTEM_V + EXPLOIT_SURFACE + DESCRIPTOR_PASSING]
        rules += [(name, errno.ENOSYS, None) for name in ANONYMOUS_FILES]
        rules.append(("socket", errno.EPERM, _ArgCmp(0, SCMP_CMP_NE, AF_UNIX, 0)))  # the domain: socket's first argument
        rules += [(call, errno.EPERM, _ArgCmp(1, SCMP_CMP_MASKED_EQ, SOCK_TYPE_MASK, kind))  # the type, less its flags
                  for call in ("socket", "socketpair") for kind in QUEUED_SOCKET_TYPES]
        # over 64 bits: a backlog allowed has its upper 32 bits, which the kernel drops, clear (a negative one is refused)
        rules.append(("listen", errno.EPERM, _ArgCmp(1, SCMP_CMP_GT, LISTEN_BACKLOG, 0)))
        # the command is an unsigned int: its upper 32 bits, which the kernel drops, must not hide it from the filter
        rules += [(call, errno.EPERM, _ArgCmp(1, SCMP_CMP_MASKED_EQ, 0xFFFFFFFF, F_SETPIPE_SZ))
                  for call in ("fcntl", "fcntl64")]
        if refuse_userns:
            newuser = _ArgCmp(0, SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER)  # flags are clone's first argument
            rules += [("unshare", errno.EPERM, newuser), ("clone", errno.EPERM, newuser), ("clone3", errno.ENOSYS, None)]
        for name, code, compare in rules:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number < 0:  # this architecture has no such call (e.g. inotify_init on arm64)
                continue
            done = lib.seccomp_rule_add_array(context, SCMP_ACT_ERRNO(code), number, 1 if compare else 0,
                                              ctypes.byref(compare) if compare else None)
            if done != 0:
                raise OSError(-done, f"seccomp_rule_add({name}) failed: {os.strerror(-done)}")
        fd = os.memfd_create("neurozoo-seccomp", 0)
        done = lib.seccomp_export_bpf(context, fd)
        if done != 0:
            os.close(fd)
            raise OSError(-done, f"seccomp_export_bpf failed: {os.strerror(-done)}")
        os.lseek(fd, 0, os.SEEK_SET)
        return fd
    finally:
        lib.seccomp_release(context)
