"""Probe workers forked, not started: a fork of the `run --workers N` process, made before its
engine starts (no thread, no history database, no API socket yet), that forks each worker on
the parent's request. A fresh interpreter costs about half a second of CPU before it probes
anything (imports, the inventory's load), and with N workers that was N times on the cores the
probes need; a fork of a process that has all of it already costs milliseconds, restarts too.

The zygote holds the checks as the parent loaded them, so a worker forked from it runs exactly
what the engine judges, whatever the file says now. It keeps one socket to the parent: a
request is the worker's index with the two ends of its pipes (its orders' read end, its
messages' write end, passed as descriptors); the answers are lines, `started PID` for each
request and `ended PID CODE` when a worker ends (CODE as a subprocess' return code: negative,
the signal that killed it). The end of that socket ends the zygote: the parent closed it or
died (SIGKILL included), and every worker then sees its own orders pipe close and stops.

A zygote that is gone (killed by someone) is not made again (the parent has threads by then),
and none is made by a process that has threads already: the pool starts fresh interpreters
instead (monitor.cluster.workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import threading
from collections.abc import Mapping
from pathlib import Path

from monitor.config.inventory import Check

log = logging.getLogger("commwatch.workers")

_REQUEST_LIMIT = 64  # bytes of one request: a worker's index


class Forked:
    """A worker forked by the zygote, as the pool uses a subprocess: its pipes, its end."""

    def __init__(self, pid: int, stdin: asyncio.StreamWriter, stdout: asyncio.StreamReader):
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self.returncode: int | None = None
        self._ended: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

    def ended(self, code: int | None) -> None:
        """The zygote saw it end with `code`; None: the zygote is gone, and with it the code."""
        if not self._ended.done():
            self.returncode = code
            self._ended.set_result(code)

    async def wait(self) -> int | None:
        return await asyncio.shield(self._ended)

    def kill(self) -> None:
        if not self._ended.done():  # not reaped yet: the pid is still this worker's
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


class Zygote:
    """The parent's end: `fork()` one now, then `start(worker)` each worker from it."""

    def __init__(self, pid: int, control: socket.socket) -> None:
        self.pid = pid
        self._control = control
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._answers: asyncio.Task[None] | None = None
        self._started: asyncio.Queue[int] = asyncio.Queue()
        self._workers: dict[int, Forked] = {}
        self._one_at_a_time = asyncio.Lock()
        self.gone = False

    @classmethod
    def fork(cls, checks: Mapping[str, Check]) -> Zygote | None:
        """A zygote holding `checks`, or None when this process has threads already (a lock one
        of them holds would stay held in every fork: `commwatch demo`'s lab serves from threads)
        or the system will not fork; the pool then starts fresh interpreters."""
        if threading.active_count() > 1:
            return None
        parent_end, zygote_end = socket.socketpair()
        try:
            pid = os.fork()
        except OSError as exc:
            log.warning("cannot fork the probe workers' zygote (%s)", exc.strerror)
            parent_end.close()
            zygote_end.close()
            return None
        if pid == 0:
            code = 1
            try:
                parent_end.close()
                code = _serve(zygote_end, checks)
            except BaseException:
                log.exception("the probe workers' zygote failed")
            finally:
                os._exit(code)  # never back into the parent's code
        zygote_end.close()
        return cls(pid, parent_end)

    async def start(self, worker: int) -> Forked:
        """Worker `worker`, forked; OSError when the zygote cannot (it is gone)."""
        async with self._one_at_a_time:
            if self._answers is None:
                # The writer is kept: one let go closes the transport, and the socket with it.
                self._reader, self._writer = await asyncio.open_connection(sock=self._control)
                self._answers = asyncio.create_task(self._read_answers())
            if self.gone:
                raise OSError("the zygote is gone")
            loop = asyncio.get_running_loop()
            orders_read, orders_write = os.pipe()
            messages_read, messages_write = os.pipe()
            try:
                socket.send_fds(
                    self._control, [f"{worker}\n".encode()], [orders_read, messages_write]
                )
            except OSError:
                os.close(orders_write)
                os.close(messages_read)
                raise
            finally:  # the worker's ends: the zygote has its own copies now, or none
                os.close(orders_read)
                os.close(messages_write)
            stdout = asyncio.StreamReader()
            await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(stdout), os.fdopen(messages_read, "rb", 0)
            )
            transport, protocol = await loop.connect_write_pipe(
                lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()),
                os.fdopen(orders_write, "wb", 0),
            )
            stdin = asyncio.StreamWriter(transport, protocol, None, loop)
            pid = await self._started.get()
            if pid < 0:
                transport.close()
                raise OSError("the zygote is gone")
            forked = Forked(pid, stdin, stdout)
            self._workers[pid] = forked
            return forked

    async def _read_answers(self) -> None:
        assert self._reader is not None
        try:
            while line := await self._reader.readline():
                match line.split():
                    case [b"started", pid]:
                        self._started.put_nowait(int(pid))
                    case [b"ended", pid, code]:
                        if (forked := self._workers.pop(int(pid), None)) is not None:
                            forked.ended(int(code))
        finally:
            if not self.gone:  # not closed by the parent
                log.error(
                    "the probe workers' zygote (pid %d) is gone: workers are started as fresh "
                    "interpreters from now on",
                    self.pid,
                )
            self.gone = True
            self._started.put_nowait(-1)
            for forked in self._workers.values():
                forked.ended(None)
            self._workers.clear()

    async def close(self) -> None:
        """End the zygote (running workers go on until their orders pipe closes) and reap it."""
        self.gone = True
        if self._writer is not None:
            self._writer.close()  # the transport's socket, now
        else:
            self._control.close()
        if self._answers is not None:
            self._answers.cancel()
            await asyncio.gather(self._answers, return_exceptions=True)
        for _ in range(200):  # it ends at once; 10 s at most before it is killed
            try:
                if os.waitpid(self.pid, os.WNOHANG)[0]:
                    return
            except ChildProcessError:
                return
            await asyncio.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)


# --- in the zygote ---------------------------------------------------------------------------


def _serve(control: socket.socket, checks: Mapping[str, Check]) -> int:
    """The zygote's life: a worker forked for each request until the parent's end closes."""
    os.setpgid(0, 0)  # a terminal's Ctrl-C is the parent's, which stops the workers in order
    signal.set_wakeup_fd(-1)  # the parent's event loop's, not ours
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    with contextlib.suppress(OSError):
        Path("/proc/self/comm").write_text("commwatch-fork")
    # What the parent left unreachable is never collected here nor in a worker: a socket of the
    # parent's freed in a fork would close a descriptor number the fork may have reused.
    gc.freeze()
    control.setblocking(True)
    quiet = os.open(os.devnull, os.O_RDWR)
    os.dup2(quiet, 0)
    os.dup2(quiet, 1)
    os.close(quiet)

    def reap(_signal: int, _frame: object) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            control.sendall(f"ended {pid} {code}\n".encode())

    signal.signal(signal.SIGCHLD, reap)
    while True:
        request, fds, _flags, _address = socket.recv_fds(control, _REQUEST_LIMIT, 2)
        if not request:
            return 0
        # No worker's end is told before it is told started (the parent learns its pid first).
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        try:
            pid = _fork_worker(int(request), fds, control, checks)
            for fd in fds:
                os.close(fd)
            control.sendall(f"started {pid}\n".encode())
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})


def _fork_worker(
    worker: int, fds: list[int], control: socket.socket, checks: Mapping[str, Check]
) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        control.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        os.setpgid(0, 0)
        code = _run_worker(worker, fds, checks)
    except BaseException:
        log.exception("probe worker %d failed", worker)
    finally:
        os._exit(code)


def _run_worker(worker: int, fds: list[int], checks: Mapping[str, Check]) -> int:
    from monitor.cluster.worker import name_process, serve

    name_process(worker)
    orders_fd, out_fd = fds
    os.dup2(2, 1)  # as a started worker: a library's print cannot break a message
    return asyncio.run(serve(orders_fd, out_fd, loaded=checks))
