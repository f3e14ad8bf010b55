"""Where a command's CPU time goes: its process tree, polled, summed by phase and kind.

``make test`` and ``make reproduce`` start many Python processes: test processes, notebook
kernels, ``cxr`` commands. While the command runs, ``Tree.poll`` records each process of
its tree (pid, parent, command line, CPU seconds so far, whether it has loaded
TensorFlow's library); ``Tree.summary`` then adds the last CPU reading of each process up
by *phase* (the command of make's child it descends from: one recipe line, or one
command of a line that a shell runs side by side with others; the shell itself counts
as make's) and by *kind* of process. A process that lives less than one polling
interval may be missed, and one that ends loses at most its last interval:
``all_children_cpu_s`` (the operating system's own total for every finished descendant,
``getrusage``) is kept beside the polled sum so the reader sees how much was missed.
"""
from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

KINDS = ("notebook kernel", "test process", "cxr command")
OTHER = "other"
TF_LIBRARY = "libtensorflow_framework"
TF_CHECK_S = 2.0  # look for TensorFlow's library in a process at most this often
XDIST_WORKER = "exec(eval(sys.stdin.readline()))"  # how pytest-xdist starts its workers
SHELL_OPERATORS = ("&&", "||", ";", "|")


def _words(command: str) -> tuple[list[str], list[str]]:
    """A command line's words, and the same words as file names (no folders)."""
    words = command.split()
    return words, [w.rsplit("/", 1)[-1] for w in words]


def kind_of(command: str) -> str:
    """The kind of a process, from its command line (``OTHER`` when none matches)."""
    words, names = _words(command)
    if "ipykernel_launcher" in words:
        return "notebook kernel"
    if "pytest" in names[:3] or XDIST_WORKER in command:
        return "test process"
    if "cxrlib.cli" in words[:3] or "cxr" in names[:2]:
        return "cxr command"
    return OTHER


def is_shell(command: str) -> bool:
    """Whether a command line is a shell running a command string (make's recipe lines
    with shell syntax)."""
    words, names = _words(command)
    return names[:1] in (["sh"], ["bash"]) and "-c" in words[:-1]


def phase_label(command: str) -> str:
    """A short name for a recipe line: ``pytest tests``, ``cxr data sample``,
    ``cxr batch (quick)``; another program by its name and first argument."""
    words, names = _words(command)
    if is_shell(command):  # make ran the line in a shell
        line = words[words.index("-c") + 1:]
        cut = min((line.index(op) for op in SHELL_OPERATORS if op in line), default=len(line))
        return phase_label(" ".join(line[:cut]))
    if "pytest" in names:
        targets = [w for w in words[names.index("pytest") + 1:] if not w.startswith("-")]
        return " ".join(["pytest", *(t.rsplit("/", 1)[-1] for t in targets[-1:])])
    for program in ("cxr", "cxrlib.cli"):
        if program in names:
            rest = words[names.index(program) + 1:]
            verbs = []
            for word in rest:
                if word.startswith("-"):
                    break
                verbs.append(word)
            label = " ".join(["cxr", *verbs])
            if "--profile" in rest[:-1]:
                label += f" ({rest[rest.index('--profile') + 1]})"
            return label
    arguments = [n for n in names[1:] if not n.startswith("-")]
    return " ".join(names[:1] + arguments[:1]) or "?"


@dataclass
class Seen:
    """One process of the tree as last polled."""

    pid: int
    ppid: int
    started: float
    command: str
    cpu_s: float
    last: float
    tensorflow: bool = False
    checked: float = 0.0


def loaded_tensorflow(pid: int) -> bool:
    """Whether a live process has TensorFlow's shared library mapped (Linux ``/proc``)."""
    try:
        with open(f"/proc/{pid}/maps") as maps:
            return any(TF_LIBRARY in line for line in maps)
    except OSError:
        return False


class Tree:
    """The processes of one command's tree, polled (``poll``) and summed (``summary``)."""

    def __init__(self, root) -> None:
        self.root = root  # a psutil.Process
        self.seen: dict[tuple[int, float], Seen] = {}
        self.children_start = _children_cpu()

    def poll(self) -> tuple[int, int]:
        """Read every live process of the tree once; return (total, largest single)
        resident bytes of the tree, for the peak memory."""
        import psutil

        try:
            members = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0, 0
        now, sizes = time.time(), []
        for process in members:
            try:
                with process.oneshot():
                    key = (process.pid, process.create_time())
                    times = process.cpu_times()
                    sizes.append(process.memory_info().rss)
                    command = " ".join(process.cmdline())
                    seen = self.seen.get(key)
                    if seen is None:
                        seen = self.seen[key] = Seen(process.pid, process.ppid(), key[1],
                                                     command, 0.0, now)
                    # a child polled between fork and exec still showed its parent's
                    # command line (make's, say): the one it runs is the last one seen
                    seen.command = command or seen.command
                    seen.cpu_s, seen.last = times.user + times.system, now
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            if not seen.tensorflow and seen.cpu_s > 1.0 and now - seen.checked > TF_CHECK_S:
                seen.tensorflow, seen.checked = loaded_tensorflow(seen.pid), now
        return sum(sizes), max(sizes, default=0)

    def summary(self) -> dict:
        """CPU seconds by phase and kind, the processes that loaded TensorFlow, and the
        operating system's total for comparison."""
        in_order = sorted(self.seen.values(), key=lambda s: s.started)
        by_pid = {s.pid: s for s in in_order}  # a reused pid: its latest process
        root_pid = self.root.pid

        def line_of(seen: Seen) -> Seen:
            """The child of the root it descends from; when that child is a shell running
            a recipe line, the shell's child (a line that starts commands side by side,
            `a & b; wait`, is a phase per command) and, for the shell itself, the root."""
            chain = [seen]
            while seen.ppid != root_pid and seen.ppid in by_pid and seen.pid != root_pid:
                seen = by_pid[seen.ppid]
                chain.append(seen)
            if seen.ppid == root_pid and is_shell(seen.command):
                return chain[-2] if len(chain) > 1 else by_pid.get(root_pid, seen)
            return seen

        labels: dict[int, str] = {}  # one label per recipe line, numbered when repeated
        lines: list[tuple[Seen, str]] = []  # each process with its recipe line's label
        for seen in in_order:
            top = line_of(seen)
            if top.pid not in labels:
                label = "(make itself)" if top.pid == root_pid else phase_label(top.command)
                taken = sum(1 for v in labels.values() if v.split(" #")[0] == label)
                labels[top.pid] = label if not taken else f"{label} #{taken + 1}"
            lines.append((seen, labels[top.pid]))
        phases: dict[str, dict] = {}
        for seen, line in lines:
            block = phases.setdefault(line, {"processes": 0, "tensorflow_processes": 0,
                                                     "cpu_s": 0.0, "first": seen.started,
                                                     "last": seen.last, "kinds": {}})
            kind = block["kinds"].setdefault(kind_of(seen.command),
                                             {"processes": 0, "tensorflow_processes": 0,
                                              "cpu_s": 0.0})
            for target in (block, kind):
                target["processes"] += 1
                target["tensorflow_processes"] += int(seen.tensorflow)
                target["cpu_s"] += seen.cpu_s
            block["first"], block["last"] = min(block["first"], seen.started), max(block["last"], seen.last)
        ordered = sorted(phases.items(), key=lambda item: item[1]["first"])
        for _, block in ordered:
            block["wall_s"] = block.pop("last") - block.pop("first")
        polled = sum(s.cpu_s for s in self.seen.values())
        return {"phases": dict(ordered), "polled_cpu_s": polled,
                "all_children_cpu_s": _children_cpu() - self.children_start,
                "processes": len(self.seen),
                "tensorflow_processes": sum(s.tensorflow for s in self.seen.values())}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


IMPORT_CODE = ("import json, resource, time; start = time.perf_counter(); "
               "import tensorflow, keras; wall = time.perf_counter() - start; "
               "usage = resource.getrusage(resource.RUSAGE_SELF); "
               "print(json.dumps({'wall_s': wall, 'cpu_s': usage.ru_utime + usage.ru_stime}))")


def tensorflow_import_cost(repeats: int = 3, env: dict | None = None) -> dict:
    """CPU and wall seconds of a fresh Python process importing TensorFlow and Keras (the
    CPU figure includes the interpreter's own start): the median of ``repeats``."""
    samples = []
    for _ in range(repeats):
        done = subprocess.run([sys.executable, "-c", IMPORT_CODE], capture_output=True,
                              text=True, check=True, env=env)
        samples.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {"repeats": repeats,
            "cpu_s": statistics.median(s["cpu_s"] for s in samples),
            "wall_s": statistics.median(s["wall_s"] for s in samples),
            "cpu_s_all": [s["cpu_s"] for s in samples]}
