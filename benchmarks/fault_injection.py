"""Fault injection: kill, starve and corrupt kdistill runs, and check that nothing is lost.

    OMP_NUM_THREADS=1 python benchmarks/fault_injection.py            # ~15 min on 2 busy cores
    python benchmarks/fault_injection.py --kills 1 --procedures train  # a quick look

Every run is a real ``kdistill`` process on real MNIST (1,000 training / 500 test images).

* **Kills at random moments**: each procedure (train, distill, born-again, mutual and a
  reproduction stage) is run once straight, then ``--kills`` times per signal (SIGKILL,
  SIGTERM, SIGINT), each killed after a random delay (seeded) and continued with ``--resume``
  (the stage by rerunning it). Nothing lost means: every model file bit-identical to the
  straight run's, every ``metrics.jsonl`` equal to the straight run's but for wall-clock
  fields (each epoch exactly once), no temporary file left.
* **Kills inside a checkpoint write**: SIGKILL while the temporary file is flushed (before the
  rename) and at the rename, for the n-th checkpoint; then the same checks after ``--resume``.
* **A full disk**: a tmpfs sized for one checkpoint and a half (when this runs as root; else
  ENOSPC is injected at the same point): the run stops with one line, the last checkpoint is
  intact and resumes (on a roomy disk) to identical weights. Then the teacher-logit cache on
  a 16 kB tmpfs: one line.
* **Corrupt inputs**: truncated, overwritten and other-architecture checkpoints, damaged
  teacher-logit cache entries, model files, IDX folders and ``.npz`` files: each is named in
  one line (exit status 2), or, for cache entries, rebuilt with one line and identical results.
* **Two processes**: two runs started together on one output folder (one trains, one is
  refused), two distillations filling one empty cache (both finish, identical students).

Writes ``--output`` (Markdown) and the same figures as JSON beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors.torch import load_file

SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}
PROCEDURES = ("train", "distill", "born-again", "mutual", "stage")
TIMING = {"seconds", "samples_per_second", "eval_seconds"}

STAGE_SCRIPT = """
import sys
from pathlib import Path
from kdistill.config import load_config
from kdistill.data import load_dataset
from kdistill.studies.stages import run_stage
config = load_config(sys.argv[1])
run_stage("stage", config, Path(sys.argv[2]), load_dataset(config.data.name))
"""

# SIGKILL at the n-th flush (before the rename) or rename of a file named like ``target``.
WRITE_KILL_SCRIPT = """
import os, signal, sys
from kdistill import files
from kdistill.cli.main import main
where, target, nth = sys.argv[1], sys.argv[2], int(sys.argv[3])
seen = {"n": 0}
real_fsync, real_replace = files.os.fsync, files.os.replace
def hit(name):
    if os.path.basename(name).lstrip(".").startswith(target):
        seen["n"] += 1
        if seen["n"] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
def fsync(fd):
    name = os.readlink(f"/proc/self/fd/{fd}")
    if where == "flush" and name.endswith(".tmp"):
        hit(name)
    real_fsync(fd)
def replace(source, destination):
    if where == "rename":
        hit(str(destination))
    real_replace(source, destination)
files.os.fsync, files.os.replace = fsync, replace
sys.exit(main(sys.argv[4:]))
"""


def run(argv: list[str], env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)


def kdistill(*args: str) -> list[str]:
    return [sys.executable, "-m", "kdistill", *args]


class Bench:
    def __init__(self, work: Path, seed: int) -> None:
        self.work = work
        self.random = random.Random(seed)
        self.env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "KDISTILL_CACHE": str(work / "cache"),
            "PYTHONUNBUFFERED": "1",
        }
        self.failures: list[str] = []
        self.kills: Counter[str] = Counter()
        self.exit_codes: Counter[str] = Counter()
        self.corrupt: Counter[str] = Counter()
        self.other: dict[str, Any] = {}

    # --- set-up ---------------------------------------------------------------------------

    def prepare(self) -> None:
        from kdistill.data import load_dataset

        mnist = load_dataset("mnist")
        self.npz = self.work / "mnist-1000.npz"
        np.savez(
            self.npz,
            x_train=mnist.train.inputs[:1000].numpy(),
            y_train=mnist.train.labels[:1000].numpy(),
            x_test=mnist.test.inputs[:500].numpy(),
            y_test=mnist.test.labels[:500].numpy(),
        )
        base = {
            "seed": 5,
            "data": {"name": f"npz:{self.npz}", "max_shift": 1},
            "model": {"name": "mlp", "kwargs": {"hidden_sizes": [64], "hidden_dropout": 0.2}},
            "train": {
                "epochs": 3,
                "batch_size": 50,
                "threads": 1,
                "progress": False,
                "checkpoint_every_steps": 7,
                "optimizer": {"lr": 0.05},
            },
        }
        self.configs = {"train": self._write("train", base)}
        teacher = self.work / "teacher"
        if not (teacher / "model.safetensors").exists():
            self._check(
                run(
                    kdistill(
                        "train",
                        str(self.configs["train"]),
                        "--output-dir",
                        str(teacher),
                        "--overwrite",
                    ),
                    self.env,
                ),
                "teacher",
            )
        distill = {
            **base,
            "data": {"name": f"npz:{self.npz}"},  # no jitter: the teacher-logit cache is used
            "distill": {
                "teachers": [{"checkpoint": str(teacher / "model.safetensors")}],
                "temperature": 4,
            },
        }
        self.configs["distill"] = self._write("distill", distill)
        ban = {**base, "born_again": {"generations": 1}}
        ban["train"] = {**base["train"], "epochs": 2}
        self.configs["born-again"] = self._write("born-again", ban)
        mutual = {
            **base,
            "mutual": {
                "members": [
                    {"name": "mlp", "kwargs": {"hidden_sizes": [32]}},
                    {"name": "mlp", "kwargs": {"hidden_sizes": [48], "hidden_dropout": 0.2}},
                ]
            },
        }
        mutual["train"] = {**base["train"], "epochs": 2}
        self.configs["mutual"] = self._write("mutual", mutual)
        self.configs["stage"] = self.configs["train"]

    def _write(self, name: str, raw: dict[str, Any]) -> Path:
        path = self.work / f"{name}.yaml"
        path.write_text(yaml.safe_dump(raw))
        return path

    def command(self, procedure: str, folder: Path, resume: bool = False) -> list[str]:
        config = str(self.configs[procedure])
        if procedure == "stage":
            return [sys.executable, "-c", STAGE_SCRIPT, config, str(folder)]
        extra = {"born-again": ["--generations", "1"], "mutual": ["--no-baselines"]}
        argv = kdistill(procedure, config, "--output-dir", str(folder), *extra.get(procedure, []))
        return argv + (["--resume"] if resume else [])

    # --- checks ---------------------------------------------------------------------------

    def _check(self, result: subprocess.CompletedProcess, what: str) -> bool:
        if result.returncode != 0:
            self.failures.append(f"{what}: exit {result.returncode}: {result.stderr[-300:]}")
            return False
        return True

    def same_as(self, folder: Path, reference: Path, what: str) -> bool:
        """Model files bit-identical, metrics logs equal but for timing, no temporaries."""
        problems = []
        models = sorted(
            path.relative_to(reference)
            for path in reference.rglob("*.safetensors")
            if path.name != "checkpoint.safetensors"
        )
        if not models:
            problems.append("the reference has no model file")
        for relative in models:
            if not (folder / relative).exists():
                problems.append(f"{relative} missing")
                continue
            a, b = load_file(reference / relative), load_file(folder / relative)
            if a.keys() != b.keys() or any(not torch.equal(a[k], b[k]) for k in a):
                problems.append(f"{relative} differs")
        for log in reference.rglob("metrics.jsonl"):
            relative = log.relative_to(reference)
            if _records(folder / relative) != _records(log):
                problems.append(f"{relative} differs")
            epochs = [record["epoch"] for record in _records(folder / relative)]
            if epochs != list(range(1, len(epochs) + 1)):
                problems.append(f"{relative} epochs {epochs}")
        leftovers = list(folder.rglob(".*.tmp"))
        if leftovers:
            problems.append(f"temporaries left: {[p.name for p in leftovers]}")
        if problems:
            self.failures.append(f"{what}: {'; '.join(problems)}")
        return not problems

    def one_line(self, result: subprocess.CompletedProcess, what: str, says: str = "") -> bool:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        ok = (
            result.returncode == 2
            and len(lines) == 1
            and lines[0].startswith("kdistill: error:")
            and says in lines[0]
        )
        if not ok:
            self.failures.append(
                f"{what}: exit {result.returncode}, stderr {result.stderr[-300:]!r}"
            )
        return ok

    # --- the experiments ------------------------------------------------------------------

    def straight(self, procedure: str) -> tuple[Path, float]:
        folder = self.work / "straight" / procedure
        shutil.rmtree(folder, ignore_errors=True)
        started = time.perf_counter()
        self._check(run(self.command(procedure, folder), self.env), f"straight {procedure}")
        return folder, time.perf_counter() - started

    def kill_at_random(
        self, procedure: str, name: str, index: int, reference: Path, seconds: float
    ) -> None:
        folder = self.work / "kills" / f"{procedure}-{name}-{index}"
        shutil.rmtree(folder, ignore_errors=True)
        delay = self.random.uniform(0.1, 0.95) * seconds
        process = subprocess.Popen(
            self.command(procedure, folder),
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            process.wait(timeout=delay)
            finished = True
        except subprocess.TimeoutExpired:
            finished = False
            process.send_signal(SIGNALS[name])
            process.wait(timeout=600)
        stderr = process.stderr.read() if process.stderr else ""
        if finished:
            self.kills["finished before the signal"] += 1
        else:
            self.kills[f"{procedure} {name}"] += 1
            self.exit_codes[f"{name} -> {process.returncode}"] += 1
            if name == "SIGTERM" and process.returncode == 143 and "--resume" not in stderr:
                self.failures.append(f"{procedure} SIGTERM: no resume hint in {stderr[-200:]!r}")
        resumed = run(self.command(procedure, folder, resume=True), self.env)
        if self._check(resumed, f"resume {procedure} after {name} at {delay:.1f} s"):
            self.same_as(folder, reference, f"{procedure} {name} at {delay:.1f} s")

    def kill_inside_write(self, procedure: str, where: str, nth: int, reference: Path) -> None:
        folder = self.work / "write-kills" / f"{procedure}-{where}-{nth}"
        shutil.rmtree(folder, ignore_errors=True)
        argv = self.command(procedure, folder)[3:]  # after "python -m kdistill"
        killed = run(
            [
                sys.executable,
                "-c",
                WRITE_KILL_SCRIPT,
                where,
                "checkpoint.safetensors",
                str(nth),
                *argv,
            ],
            self.env,
        )
        self.kills[f"{procedure} SIGKILL inside checkpoint write ({where})"] += 1
        if killed.returncode != -signal.SIGKILL:
            self.failures.append(f"write kill {procedure} {where} {nth}: exit {killed.returncode}")
        leftovers = len(list(folder.rglob(".*.tmp")))
        self.other.setdefault("temporaries left by write kills", 0)
        self.other["temporaries left by write kills"] += leftovers
        resumed = run(self.command(procedure, folder, resume=True), self.env)
        if self._check(resumed, f"resume after write kill {procedure} {where} {nth}"):
            self.same_as(folder, reference, f"write kill {procedure} {where} {nth}")

    def full_disk(self, reference: Path) -> None:
        size = (reference / "checkpoint.safetensors").stat().st_size
        mount = self.work / "small-disk"
        mount.mkdir(exist_ok=True)
        mounted = _mount(mount, int(size * 1.5) + 64 * 1024)
        self.other["full disk"] = "tmpfs" if mounted else "injected ENOSPC (not root)"
        folder = mount / "run"
        try:
            if mounted:
                result = run(self.command("train", folder), self.env)
            else:
                argv = self.command("train", folder)[3:]
                result = run([sys.executable, "-c", _ENOSPC_SCRIPT, *argv], self.env)
            ok = self.one_line(result, "full disk during a checkpoint", "No space left")
            saved = json.loads((folder / "checkpoint.json").read_text())
            from kdistill.engine.checkpoint import load_tensors

            load_tensors(folder / "checkpoint.safetensors")  # intact and passes its checksum
            roomy = self.work / "full-disk-resumed"
            shutil.rmtree(roomy, ignore_errors=True)
            shutil.copytree(folder, roomy)
            self.other["full disk: checkpoint kept at step"] = saved["step"]
            resumed = run(self.command("train", roomy, resume=True), self.env)
            if ok and self._check(resumed, "resume after a full disk"):
                self.same_as(roomy, reference, "resume after a full disk")
        finally:
            if mounted:
                subprocess.run(["umount", str(mount)], check=False)
        cache = self.work / "small-cache"
        cache.mkdir(exist_ok=True)
        if _mount(cache, 16 * 1024):
            try:
                folder = self.work / "full-cache-run"
                shutil.rmtree(folder, ignore_errors=True)
                result = run(
                    self.command("distill", folder), {**self.env, "KDISTILL_CACHE": str(cache)}
                )
                self.one_line(result, "full disk during a cache write", "No space left")
                self.other["full cache disk"] = "tmpfs of 16 kB"
            finally:
                subprocess.run(["umount", str(cache)], check=False)

    def corrupt_inputs(self, references: dict[str, Path]) -> None:
        from kdistill.engine.checkpoint import load_tensors

        # Checkpoints: a killed train run's checkpoint, damaged three ways.
        for damage in ("truncated", "overwritten", "other architecture"):
            folder = self.work / "corrupt" / f"checkpoint-{damage.replace(' ', '-')}"
            shutil.rmtree(folder, ignore_errors=True)
            shutil.copytree(references["train"], folder)
            checkpoint = folder / "checkpoint.safetensors"
            payload = checkpoint.read_bytes()
            if damage == "truncated":
                checkpoint.write_bytes(payload[: len(payload) // 3])
                says = "not a readable safetensors"
            elif damage == "overwritten":
                checkpoint.write_bytes(payload[:-4096] + bytes(4096))
                says = "is corrupt"
            else:
                shutil.copy(references["mutual"] / "cohort" / "checkpoint.safetensors", checkpoint)
                says = "holds other models"
            self.corrupt[f"checkpoint, {damage}"] += 1
            self.one_line(
                run(self.command("train", folder, resume=True), self.env),
                f"checkpoint {damage}",
                says,
            )
        # Teacher-logit cache entries: rebuilt with one line, the same student.
        for damage in ("zeros", "truncated", "wrong shape"):
            cache = self.work / "cache-corrupt"
            shutil.rmtree(cache, ignore_errors=True)
            shutil.copytree(self.work / "cache", cache)
            (entry,) = (cache / "teacher-logits").glob("*.safetensors")
            tensors, saved = load_tensors(entry)
            from kdistill.engine.checkpoint import save_tensors

            if damage == "zeros":
                save_tensors(entry, {"logits": torch.zeros_like(tensors["logits"])}, saved)
            elif damage == "truncated":
                entry.write_bytes(entry.read_bytes()[:200])
            else:
                save_tensors(entry, {"logits": tensors["logits"][:, :10]}, saved)
            folder = self.work / "corrupt" / f"cache-{damage.replace(' ', '-')}"
            shutil.rmtree(folder, ignore_errors=True)
            result = run(
                self.command("distill", folder), {**self.env, "KDISTILL_CACHE": str(cache)}
            )
            self.corrupt[f"teacher-logit cache entry, {damage}"] += 1
            rebuilt = [line for line in result.stderr.splitlines() if "rebuilt" in line]
            if self._check(result, f"cache {damage}") and len(rebuilt) == 1:
                self.same_as(folder, references["distill"], f"cache {damage}")
            elif result.returncode == 0:
                self.failures.append(f"cache {damage}: {len(rebuilt)} 'rebuilt' lines")
        # Model files given to evaluate.
        model = references["train"] / "model.safetensors"
        for damage in ("truncated", "overwritten"):
            broken = self.work / "corrupt" / f"model-{damage}.safetensors"
            payload = model.read_bytes()
            broken.write_bytes(
                payload[:1000] if damage == "truncated" else payload[:-512] + b"\xff" * 512
            )
            self.corrupt[f"model file, {damage}"] += 1
            self.one_line(
                run(kdistill("evaluate", str(broken), "--data", f"npz:{self.npz}"), self.env),
                f"model {damage}",
            )
        # IDX folders and .npz files as training data.
        for kind, damage, write in _data_damages(self.npz):
            target = self.work / "corrupt" / f"data-{kind}-{damage.replace(' ', '-')}"
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            spec = write(target)
            self.corrupt[f"{kind}, {damage}"] += 1
            argv = kdistill(
                "train",
                str(self.configs["train"]),
                "--set",
                f"data.name={spec}",
                "--output-dir",
                str(target / "run"),
            )
            self.one_line(run(argv, self.env), f"{kind} {damage}")

    def two_processes(self, references: dict[str, Path]) -> None:
        folder = self.work / "two" / "one-folder"
        shutil.rmtree(folder, ignore_errors=True)
        processes = [
            subprocess.Popen(
                self.command("train", folder),
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        codes = sorted(process.wait(timeout=900) for process in processes)
        self.other["two runs on one folder: exit codes"] = codes
        if codes != [0, 2]:
            self.failures.append(f"two runs on one folder: exit codes {codes}")
        self.same_as(folder, references["train"], "two runs on one folder")
        cache = self.work / "two" / "empty-cache"
        shutil.rmtree(cache, ignore_errors=True)
        folders = [self.work / "two" / f"distill-{index}" for index in range(2)]
        for target in folders:
            shutil.rmtree(target, ignore_errors=True)
        processes = [
            subprocess.Popen(
                self.command("distill", target),
                env={**self.env, "KDISTILL_CACHE": str(cache)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for target in folders
        ]
        codes = [process.wait(timeout=900) for process in processes]
        self.other["two distillations on one empty cache: exit codes"] = codes
        if codes != [0, 0]:
            self.failures.append(f"two distillations on one empty cache: exit codes {codes}")
        for target in folders:
            self.same_as(target, references["distill"], f"one empty cache, {target.name}")
        entries = len(list((cache / "teacher-logits").glob("*.safetensors")))
        self.other["cache entries after two processes"] = entries


_ENOSPC_SCRIPT = """
import errno, os, sys
from kdistill import files
from kdistill.cli.main import main
seen = {"n": 0}
real = files.os.fsync
def fsync(fd):
    if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".checkpoint.safetensors"):
        seen["n"] += 1
        if seen["n"] >= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
    real(fd)
files.os.fsync = fsync
sys.exit(main(sys.argv[1:]))
"""


def _mount(folder: Path, size: int) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    return result.returncode == 0


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [
        {k: v for k, v in json.loads(line).items() if k not in TIMING}
        for line in path.read_text().splitlines()
        if line.strip()
    ]


def _data_damages(npz: Path):
    """(kind, damage, write(folder) -> data spec) for IDX folders and .npz files."""
    import gzip

    with np.load(npz) as arrays:
        data = {key: arrays[key] for key in arrays.files}

    def idx_bytes(array: np.ndarray) -> bytes:
        header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
            int(n).to_bytes(4, "big") for n in array.shape
        )
        return header + array.astype(np.uint8).tobytes()

    names = {
        "x_train": "train-images-idx3-ubyte",
        "y_train": "train-labels-idx1-ubyte",
        "x_test": "t10k-images-idx3-ubyte",
        "y_test": "t10k-labels-idx1-ubyte",
    }

    def idx(damage: str):
        def write(folder: Path) -> str:
            for key, name in names.items():
                payload = idx_bytes(data[key])
                if key == "x_train":
                    if damage == "truncated":
                        payload = payload[: len(payload) // 2]
                    elif damage == "bad magic":
                        payload = b"\x01\x02" + payload[2:]
                    elif damage == "corrupt gzip":
                        payload = gzip.compress(payload)[:-100]
                    elif damage == "labels of another length":
                        pass
                if key == "y_train" and damage == "labels of another length":
                    payload = idx_bytes(data[key][:-7])
                (folder / name).write_bytes(payload)
            return f"idx:{folder}"

        return write

    def npz_file(damage: str):
        def write(folder: Path) -> str:
            path = folder / "data.npz"
            if damage == "truncated":
                path.write_bytes(npz.read_bytes()[:5000])
            elif damage == "a text file":
                path.write_text("x_train,y_train\n0,1\n")
            elif damage == "missing y_test":
                np.savez(path, **{k: v for k, v in data.items() if k != "y_test"})
            elif damage == "labels of another length":
                np.savez(path, **{**data, "y_train": data["y_train"][:-3]})
            elif damage == "object arrays":
                np.savez(path, **{**data, "x_train": np.array([None] * 3, dtype=object)})
            return f"npz:{path}"

        return write

    damages = []
    for damage in ("truncated", "bad magic", "corrupt gzip", "labels of another length"):
        damages.append(("IDX", damage, idx(damage)))
    for damage in (
        "truncated",
        "a text file",
        "missing y_test",
        "labels of another length",
        "object arrays",
    ):
        damages.append((".npz", damage, npz_file(damage)))
    return damages


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--kills", type=int, default=2, help="random kills per signal and procedure"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--procedures", default=",".join(PROCEDURES))
    parser.add_argument("--work-dir", type=Path, default=Path("runs/fault-injection"))
    parser.add_argument("--output", type=Path, default=Path("runs/fault-injection/report.md"))
    args = parser.parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    bench = Bench(args.work_dir.resolve(), args.seed)
    bench.prepare()
    procedures = [name.strip() for name in args.procedures.split(",") if name.strip()]
    references: dict[str, Path] = {}
    for procedure in PROCEDURES:
        references[procedure], seconds = bench.straight(procedure)
        print(f"straight {procedure}: {seconds:.0f} s", flush=True)
        if procedure not in procedures:
            continue
        for name in SIGNALS:
            for index in range(args.kills):
                bench.kill_at_random(procedure, name, index, references[procedure], seconds)
        print(f"  kills done, {len(bench.failures)} failures so far", flush=True)
    for procedure in ("train", "distill"):
        for where in ("flush", "rename"):
            for nth in (2, 5):
                bench.kill_inside_write(procedure, where, nth, references[procedure])
    print(f"write kills done, {len(bench.failures)} failures so far", flush=True)
    bench.full_disk(references["train"])
    bench.corrupt_inputs(references)
    bench.two_processes(references)
    total = time.perf_counter() - started
    summary = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} at the end (shared with other jobs)",
        "command": " ".join(["python benchmarks/fault_injection.py", *sys.argv[1:]]),
        "minutes": round(total / 60, 1),
        "kills": dict(bench.kills),
        "kill_count": sum(n for k, n in bench.kills.items() if k != "finished before the signal"),
        "exit_codes": dict(bench.exit_codes),
        "corrupt_inputs": dict(bench.corrupt),
        "corrupt_count": sum(bench.corrupt.values()),
        "other": bench.other,
        "failures": bench.failures,
    }
    write_report(summary, args.output)
    print(
        f"{summary['kill_count']} kills, {summary['corrupt_count']} corrupt inputs, "
        f"{len(bench.failures)} failures; report: {args.output}"
    )
    return 1 if bench.failures else 0


def write_report(summary: dict[str, Any], output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [
        "# Fault injection",
        "",
        f"Command: `{summary['command']}` ({summary['date']}, {summary['minutes']} min). "
        f"Machine: {summary['machine']}.",
        "",
        f"**{summary['kill_count']} kills, {summary['corrupt_count']} corrupt inputs, "
        f"{len(summary['failures'])} failures.** A kill passes when the resumed run's model files "
        "are bit-identical to an uninterrupted run's, its metrics logs equal (but for wall-clock "
        "fields, each epoch once) and no temporary file is left; a corrupt input passes when it "
        "is named in one line (exit 2), or, for a teacher-logit cache entry, rebuilt with one "
        "line and the same student.",
        "",
        "| kills | count |",
        "|---|---|",
        *(f"| {name} | {count} |" for name, count in sorted(summary["kills"].items())),
        "",
        "| exit status of the killed process | count |",
        "|---|---|",
        *(f"| {name} | {count} |" for name, count in sorted(summary["exit_codes"].items())),
        "",
        "| corrupt input | count |",
        "|---|---|",
        *(f"| {name} | {count} |" for name, count in sorted(summary["corrupt_inputs"].items())),
        "",
        "| other | result |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in summary["other"].items()),
        "",
        "Failures: " + ("none." if not summary["failures"] else ""),
        *(f"- {failure}" for failure in summary["failures"]),
    ]
    output.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
