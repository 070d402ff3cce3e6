"""Streaming jobs: a Kafka application in its own process, started and watched from a cell.

A job is a Python script or module (a Quix Streams application, or anything speaking the
Kafka protocol) run as a subprocess against the lab's Kafka endpoint (:meth:`Lab.serve`),
with ``STREAMLAB_BROKER`` (and Quix's ``Quix__Broker__Address``) set to its address.

Why a process and not a thread: a job can be killed and restarted (its state recovered as
in production) without taking the notebook's kernel with it, and it runs in an interpreter
of its own. That interpreter matters: Quix Streams 3.28 requires confluent-kafka below
2.13, while ``kafka://`` share consumers need confluent-kafka 2.16, so the two cannot share
an environment. :func:`setup_jobs_python` creates one with Quix's own pins
(``streamlab jobs setup DIR``); ``$STREAMLAB_JOBS_PYTHON`` names it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import venv
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pandas as pd

from streamlab.errors import (
    ConfigError,
    JobError,
    OperationTimeoutError,
    StreamlabError,
    UnknownTopicError,
    UnsupportedOperationError,
)
from streamlab.front.job_metrics import EndedBy, JobMetrics, JobRun, OutputScan, RateSampler, Sample, directory_bytes

if TYPE_CHECKING:
    from streamlab.front.lab import Lab
    from streamlab.front.reprocess import JobReset

JOBS_PYTHON_ENV = "STREAMLAB_JOBS_PYTHON"
# where a job keeps its state (start_job(state_dir=)); Quix Streams reads Quix__Deployment__State__Path itself
STATE_DIR_ENV = "STREAMLAB_JOB_STATE_DIR"
# Quix Streams' newest release when this was written; its own dependency pins (confluent-kafka
# <2.13 among them) are what pip resolves in the jobs environment, the combination Quix tests.
QUIXSTREAMS = "quixstreams==3.28.1"
TAIL_LINES = 50  # stdout/stderr lines a status keeps
_WATCH_S = 0.2  # how often the bounds are checked
_PROGRESS_S = 0.5  # how often max_records reads the group's committed offsets


@dataclass(frozen=True)
class JobStatus(JobRun):
    """A job at one moment: its run (:class:`~streamlab.front.job_metrics.JobRun`), its
    process id and its last stdout lines."""

    pid: int
    stdout: tuple[str, ...]

    def __str__(self) -> str:
        if self.state == "running":
            head = f"job {self.name!r} (pid {self.pid}) running for {self.runtime_s:.1f} s"
        else:
            head = (f"job {self.name!r} (pid {self.pid}) exited with {self.returncode} after {self.runtime_s:.1f} s"
                    f" (ended by {self.ended_by})")  # fmt: skip
        if self.consumed is not None:
            head += f"; {self.consumed} records committed"
        tail = "\n".join(f"  {line}" for line in self.stderr[-5:])
        return f"{head}\n{tail}" if tail else head


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """What :meth:`Lab.start_job` was given. A started job's (``job.spec``) is the checked
    form, its interpreter and state directory resolved, so :meth:`Job.rerun` can start the
    job again as it was (with ``dataclasses.replace`` for what changes)."""

    script: str | Path
    args: Sequence[str] = ()
    python: str | Path | None = None
    group: str | None = None
    env: Mapping[str, str] | None = None
    name: str | None = None
    cwd: str | Path | None = None
    timeout: float | None = None
    max_records: int | None = None
    outputs: Sequence[str] | str = ()
    state_dir: str | Path | None = None


class Job:
    """A running or finished job (what :meth:`Lab.start_job` returns). Every call that
    blocks takes a timeout; the process is never left running by :meth:`Lab.close`."""

    def __init__(
        self, lab: Lab, argv: Sequence[str], *, env: Mapping[str, str], name: str, outputs: tuple[str, ...],
        state_dir: Path | None, spec: JobSpec,
    ) -> None:  # fmt: skip
        group = spec.group
        self.name, self.group, self.outputs, self.state_dir = name, group, outputs, state_dir
        self.argv = tuple(argv)
        self.spec = spec
        self._lab = lab
        self._lock = threading.Lock()
        self._ended_by: EndedBy | None = None
        self._consumed: int | None = None
        self._stdout: deque[str] = deque(maxlen=TAIL_LINES)
        self._stderr: deque[str] = deque(maxlen=TAIL_LINES)
        self._baseline = self._committed() if group is not None else {}
        self._output_baseline = self._output_ends()
        self._scan = OutputScan()
        self._rates = RateSampler()
        self._started = time.monotonic()
        # the first point of the rates: nothing consumed or emitted yet, by definition
        self._rates.add(Sample(self._started, 0 if group is not None else None, 0 if outputs else None))
        self._ended: float | None = None
        try:
            self._proc = subprocess.Popen(
                list(argv), env=dict(env), cwd=spec.cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, errors="replace", bufsize=1,
            )  # fmt: skip
        except OSError as exc:
            raise JobError(f"could not start job {name!r} ({argv[0]}): {exc}") from exc
        self.pid = self._proc.pid
        assert self._proc.stdout is not None and self._proc.stderr is not None
        self._readers = [
            threading.Thread(target=_read, args=(self._proc.stdout, self._stdout, self._scan), daemon=True),
            threading.Thread(target=_read, args=(self._proc.stderr, self._stderr, self._scan), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self._watcher = threading.Thread(target=self._watch, name=f"streamlab-job-{name}", daemon=True)
        self._watcher.start()
        _RUNNING.add(self)

    def __repr__(self) -> str:
        return f"<streamlab.Job {self.name!r} pid={self.pid} {'running' if self.running else 'exited'}>"

    @property
    def running(self) -> bool:
        return self._proc.poll() is None

    def status(self) -> JobStatus:
        """Running or exited, the return code, why it ended, and its last output lines."""
        code = self._proc.poll()
        if code is not None:
            self._mark_ended("itself")
            for reader in self._readers:  # the pipes reach EOF once the process is gone
                reader.join(timeout=1.0)
        end = self._ended if code is not None and self._ended is not None else time.monotonic()
        return JobStatus(
            name=self.name, pid=self.pid, state="running" if code is None else "exited", returncode=code,
            ended_by=self._ended_by, runtime_s=end - self._started, consumed=self._consumed,
            stderr=tuple(self._stderr), stdout=tuple(self._stdout),
        )  # fmt: skip

    def wait(self, timeout: float = 60.0) -> JobStatus:
        """Wait up to ``timeout`` seconds for the job to end by itself (or by its bounds);
        OperationTimeoutError if it is still running then (it keeps running)."""
        try:
            self._proc.wait(timeout=_seconds("timeout", timeout))
        except subprocess.TimeoutExpired:
            raise OperationTimeoutError(f"job {self.name!r} still runs after {timeout} s:\n{self.status()}") from None
        return self._settled()

    def stop(self, timeout: float = 10.0) -> JobStatus:
        """Ask the job to finish (SIGTERM: Quix Streams commits and closes its state), and
        kill it (SIGKILL) if it has not exited within ``timeout`` seconds."""
        self._terminate("stop", _seconds("timeout", timeout))
        return self._settled()

    def kill(self) -> JobStatus:
        """SIGKILL now, as ``kill -9`` or a crash: nothing is committed or flushed."""
        self._terminate("kill", 0.0)
        return self._settled()

    def lag(self) -> pd.DataFrame:
        """The job's consumer group's lag per partition (:meth:`Lab.lag`)."""
        if self.group is None:
            raise ConfigError(f"job {self.name!r} was started without group=, so streamlab does not know its group")
        return self._lab.lag(self.group)

    def metrics(self) -> JobMetrics:
        """Its numbers now: records in and out (and per second), its group's lag, the bytes
        of its state directory, late records dropped and errors (:class:`JobMetrics`)."""
        status = self.status()
        sample = self._rates.newest
        in_rate, out_rate = self._rates.rates() if status.state == "running" else (None, None)
        lag = None
        if self.group is not None:
            lag = self._lab.backend.lag(self.group)  # empty, not a warning, before its first commit
            lag = lag[[c for c in ("topic", "partition", "committed", "end_offset", "lag") if c in lag.columns]]
        return JobMetrics(
            name=self.name, state=status.state, returncode=status.returncode, ended_by=status.ended_by,
            runtime_s=status.runtime_s, group=self.group, outputs=self.outputs,
            consumed=status.consumed if self.group is not None else None,
            emitted=None if not self.outputs else sample.emitted if sample is not None else 0,
            in_per_s=in_rate, out_per_s=out_rate, lag=lag,
            state_dir=None if self.state_dir is None else str(self.state_dir),
            state_bytes=directory_bytes(self.state_dir), late_records=self._scan.late_records,
            errors=self._scan.errors, stderr=status.stderr,
        )  # fmt: skip

    def reset(self, to: Any = "earliest", *, dry_run: bool = True) -> JobReset:
        """Preview (``dry_run=False``: apply, once the job has exited) what a re-run from
        ``to`` resets: the group's offsets on its input topics (:meth:`Lab.reset_offsets`),
        its Quix changelog and repartition topics and its ``state_dir`` (see
        :mod:`streamlab.front.reprocess`)."""
        from streamlab.front.reprocess import reset_job

        if self.group is None:
            raise ConfigError(f"job {self.name!r} was started without group=: there is no group to reset")
        if not dry_run and self.running:
            raise JobError(f"job {self.name!r} is still running: stop() or wait() for it before resetting its group")
        return reset_job(self._lab, self.group, to, state_dir=self.spec.state_dir, dry_run=dry_run)

    def rerun(
        self,
        to: Any = "earliest",
        *,
        script: str | Path | None = None,
        args: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> Job:
        """Reprocess: :meth:`reset` the finished job's group and state to ``to`` (dry run
        first to see what moves), then start it again with the same group, interpreter and
        state directory, ``env`` added to its environment (``{"OUTPUT": "revenue.v2"}``: a
        new output topic per run), ``script``/``args`` if the code changed. Returns the
        new :class:`Job`; the bounds ``timeout``/``max_records`` are the new run's."""
        spec = self.spec
        self.reset(to, dry_run=False)
        return start_job(self._lab, replace(
            spec, script=spec.script if script is None else script, args=spec.args if args is None else args,
            env={**(spec.env or {}), **(env or {})}, timeout=timeout, max_records=max_records,
        ))  # fmt: skip

    # internals ----------------------------------------------------------------------------
    def _settled(self) -> JobStatus:
        """The status once the watcher has seen the exit (its last count of committed records)."""
        self._watcher.join(timeout=5.0)
        return self.status()

    def _terminate(self, why: EndedBy, grace: float) -> JobStatus:
        if self._proc.poll() is None:
            self._mark_ended(why)
            if grace > 0:
                self._proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(timeout=grace)
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait(timeout=10.0)  # SIGKILL cannot be refused: a bound, not a wait on the job
        return self.status()

    def _mark_ended(self, why: EndedBy) -> None:
        with self._lock:
            if self._ended_by is None:
                self._ended_by = why
                self._ended = time.monotonic()

    def _committed(self) -> dict[tuple[str, int], int]:
        # the backend's lag, not lab.lag: a group that has not committed yet is expected here,
        # not a typo to warn about (from a thread, where a warning would reach nobody)
        assert self.group is not None
        frame = self._lab.backend.lag(self.group)
        rows = zip(frame["topic"], frame["partition"], frame["committed"], strict=True)
        return {(t, int(p)): int(c) for t, p, c in rows if pd.notna(c) and c >= 0}

    def _progress(self) -> int:
        now = self._committed()
        starts: dict[tuple[str, int], int] = {}
        for topic in {t for t, p in now if (t, p) not in self._baseline}:
            offsets = self._lab.offsets(topic)
            starts |= {(topic, int(p)): int(s) for p, s in zip(offsets["partition"], offsets["log_start_offset"],
                                                                 strict=True)}  # fmt: skip
        return sum(c - self._baseline.get(tp, starts.get(tp, 0)) for tp, c in now.items())

    def _output_ends(self) -> dict[tuple[str, int], int]:
        ends: dict[tuple[str, int], int] = {}
        for topic in self.outputs:
            try:
                offsets = self._lab.offsets(topic)
            except UnknownTopicError:  # the job creates it: everything in it will be the job's
                continue
            ends |= {(topic, int(p)): int(e) for p, e in zip(offsets["partition"], offsets["high_watermark"],
                                                             strict=True)}  # fmt: skip
        return ends

    def _emitted(self) -> int:
        return sum(end - self._output_baseline.get(tp, 0) for tp, end in self._output_ends().items())

    def _sample(self) -> None:
        """One point of records in and out, for the rates (and ``emitted``)."""
        if self._lab.closed or (self.group is None and not self.outputs):
            return
        with contextlib.suppress(StreamlabError):  # the lab closing under the watcher
            emitted = self._emitted() if self.outputs else None
            self._rates.add(Sample(time.monotonic(), self._consumed, emitted))

    def _watch(self) -> None:
        """Enforce ``timeout`` and ``max_records``, keep ``consumed`` current, sample records
        in and out, and note when the job ended by itself."""
        next_progress = 0.0
        while self._proc.poll() is None and not self._lab.closed:
            now = time.monotonic()
            if self.spec.timeout is not None and now - self._started >= self.spec.timeout:
                self._terminate("timeout", 10.0)
                break
            if now >= next_progress:
                next_progress = now + _PROGRESS_S
                self._update_progress()
                self._sample()
                if self.spec.max_records is not None and (self._consumed or 0) >= self.spec.max_records:
                    self._terminate("max_records", 10.0)
                    break
            time.sleep(_WATCH_S)
        if self._proc.poll() is not None:
            self._mark_ended("itself")  # unless stop, kill or a bound came first
            self._update_progress()  # what it committed on its way out
        self._sample()

    def _update_progress(self) -> None:
        if self.group is not None and not self._lab.closed:
            with contextlib.suppress(StreamlabError):  # the lab closing under the watcher
                self._consumed = self._progress()


def start_job(lab: Lab, spec: JobSpec) -> Job:
    """Start ``spec.script`` (a .py file, or a module run with ``-m``) in ``spec.python``; see :meth:`Lab.start_job`."""
    script, args, group, env, timeout, max_records = (spec.script, spec.args, spec.group, spec.env, spec.timeout,
                                                      spec.max_records)  # fmt: skip
    outputs = (spec.outputs,) if isinstance(spec.outputs, str) else tuple(spec.outputs)
    if not all(isinstance(t, str) and t for t in outputs):
        raise ConfigError(f"outputs must be topic names, got {outputs!r}")
    if spec.state_dir is not None and not isinstance(spec.state_dir, str | Path):
        raise ConfigError(f"state_dir must be a directory path, got {spec.state_dir!r}")
    if timeout is not None:
        timeout = _seconds("timeout", timeout)
    if max_records is not None and (isinstance(max_records, bool) or not isinstance(max_records, int)
                                    or max_records < 1):  # fmt: skip
        raise ConfigError(f"max_records must be a positive integer or None, got {max_records!r}")
    if max_records is not None and group is None:
        raise ConfigError("max_records counts the records the job's group commits: give group= too")
    if group is not None and (not isinstance(group, str) or not group):
        raise ConfigError(f"group must be a non-empty string, got {group!r}")
    if env is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise ConfigError("env must map strings to strings")
    interpreter = jobs_python(spec.python)
    path = Path(script)
    if path.suffix == ".py" or path.is_file():
        if not path.is_file():
            raise ConfigError(f"no script at {path}")
        command = [interpreter, str(path.resolve())]
        default_name = path.stem
    elif isinstance(script, str) and script.replace(".", "").replace("_", "").isalnum():
        command, default_name = [interpreter, "-m", script], script
    else:
        raise ConfigError(f"script must be a .py file or a module name, got {script!r}")
    if isinstance(args, str) or not all(isinstance(a, str) for a in args):
        raise ConfigError(f"args must be a sequence of strings, got {args!r}")
    try:
        address = lab.serve()
    except UnsupportedOperationError:
        address = lab.backend.describe().removeprefix("kafka://")  # a cluster is its own endpoint
    child = dict(os.environ)
    child.update({"STREAMLAB_BROKER": address, "Quix__Broker__Address": address, "PYTHONUNBUFFERED": "1"})
    if group is not None:
        child.update({"STREAMLAB_GROUP": group, "Quix__Consumer_Group": group})
    state = None if spec.state_dir is None else Path(spec.state_dir).absolute()
    if state is not None:  # Quix's Application() reads the platform's variable when given none
        child.update({STATE_DIR_ENV: str(state), "Quix__Deployment__State__Path": str(state)})
    child.update(env or {})
    checked = replace(spec, args=tuple(args), python=interpreter, env=dict(env or {}), timeout=timeout,
                      outputs=outputs, state_dir=state)  # fmt: skip
    return Job(lab, [*command, *args], env=child, name=spec.name or default_name, outputs=outputs, state_dir=state,
               spec=checked)  # fmt: skip


def jobs_python(python: str | Path | None = None) -> str:
    """The interpreter jobs run in: ``python``, else ``$STREAMLAB_JOBS_PYTHON``, else this one."""
    chosen = python if python is not None else os.environ.get(JOBS_PYTHON_ENV) or sys.executable
    where = "python=" if python is not None else f"${JOBS_PYTHON_ENV}" if os.environ.get(JOBS_PYTHON_ENV) else ""
    path = Path(chosen)
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise ConfigError(
            f"{where or 'the interpreter'} {chosen} is not an executable Python; create a jobs environment "
            f"with `streamlab jobs setup DIR` and set {JOBS_PYTHON_ENV}=DIR/bin/python"
        )
    return str(path)


def setup_jobs_python(
    directory: str | Path, *, packages: Sequence[str] = (QUIXSTREAMS,), timeout: float = 900.0
) -> str:
    """Create (or complete) a virtual environment at ``directory`` with ``packages``
    (default: Quix Streams, with the dependencies it pins) and return its interpreter,
    the value for ``python=`` or ``$STREAMLAB_JOBS_PYTHON``. Needs pip's index (PyPI)."""
    where = Path(directory).absolute()
    python = where / "bin" / "python"
    if not python.is_file():
        try:
            venv.EnvBuilder(with_pip=True).create(where)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise JobError(f"could not create a virtual environment at {where}: {exc}") from exc
    command = [str(python), "-m", "pip", "install", "--quiet", *packages]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=_seconds("timeout", timeout))
    except subprocess.TimeoutExpired:
        raise JobError(f"pip install {' '.join(packages)} did not finish in {timeout} s") from None
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-10:])
        raise JobError(f"pip install {' '.join(packages)} into {where} failed:\n{tail}")
    return str(python)


def stop_jobs(lab: Lab, timeout: float = 5.0) -> None:
    """Stop every job ``lab`` started that still runs (:meth:`Lab.close`)."""
    for job in [job for job in _RUNNING if job._lab is lab]:
        job._terminate("lab closed", timeout)


def _read(stream: IO[str], lines: deque[str], scan: OutputScan) -> None:
    with stream:
        for line in stream:
            lines.append(line.rstrip("\n"))
            scan.feed(lines[-1])


def _seconds(what: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigError(f"{what} must be a number of seconds >= 0, got {value!r}")
    return float(value)


_RUNNING: weakref.WeakSet[Job] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    # a job outliving its notebook would keep running against a closed endpoint
    for job in list(_RUNNING):
        if job.running:
            job._terminate("lab closed", 2.0)
