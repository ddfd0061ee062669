"""`gm fid | eval | stats` on two processes (torchrun, gloo on the CPU) give one process's numbers.

Each check runs the same command on one process (in this test process: one torch thread, as the
torchrun processes have with OMP_NUM_THREADS=1) and on two (``python -m torch.distributed.run
--nproc_per_node=2 -m gm ...``, or ``--nproc 2``) and compares every printed number to 1e-6
relative (they come out equal to the last digit: every batch is one process's batch). Sizes are
chosen so that the ranks get unequal shares and, in places, one rank gets nothing. Shipped pretrained
runs are copied to a temporary folder (eval.jsonl is written there).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from gm.cli import main

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
PRETRAINED = REPO / "checkpoints" / "pretrained"
REL = 1e-6
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "gm"]
NOISY = ("seconds", "time")     # wall-clock figures: differ between any two runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    if not (SHARED_DATA / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        pytest.skip(f"MNIST-dependent: the offline digits are not at {SHARED_DATA}")
    folder = tmp_path_factory.mktemp("runs")
    for name in ("gan", "acgan", "vae", "stargan"):
        if not (PRETRAINED / name / "config.json").is_file():
            pytest.skip(f"the shipped pretrained run {name} is not in {PRETRAINED}")
        shutil.copytree(PRETRAINED / name, folder / name)
    return folder


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "GM_DATA_DIR": str(SHARED_DATA), "GM_CACHE_DIR": str(cache)}


def _two(cmd: list[str], cache: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """A gm command on two processes; exit 0 or the failure's stderr."""
    done = subprocess.run(cmd, cwd=REPO, env=_env(cache), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def _one(args: list[str], cache: Path, monkeypatch, capsys) -> str:
    """The same command on one process (this one): its last stdout line."""
    monkeypatch.setenv("GM_CACHE_DIR", str(cache))
    monkeypatch.setenv("GM_DATA_DIR", str(SHARED_DATA))
    capsys.readouterr()
    assert main(args) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


def _assert_same(one, two, where: str = "") -> int:
    """Every number of `two` equals `one`'s to REL; returns how many numbers were compared."""
    if isinstance(one, dict):
        assert list(one) == list(two), where
        return sum(_assert_same(one[k], two[k], f"{where}.{k}") for k in one if k not in NOISY)
    if isinstance(one, list):
        assert len(one) == len(two), where
        return sum(_assert_same(a, b, f"{where}[{i}]") for i, (a, b) in enumerate(zip(one, two)))
    if isinstance(one, float):
        assert two == pytest.approx(one, rel=REL, abs=1e-12), where
        return 1
    assert one == two, where
    return int(isinstance(one, int) and not isinstance(one, bool))


def _eval_lines(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "eval.jsonl").read_text().splitlines()]


def test_fid_on_two_processes_equals_one_process(runs, tmp_path, monkeypatch, capsys):
    gan = runs / "gan"
    before = len(_eval_lines(gan)) if (gan / "eval.jsonl").is_file() else 0
    measured = []
    # classifier: 1,100 images in batches of 500, so rank 0 measures 500 and rank 1 600;
    # offline: 60 images, one batch, so rank 0 has none, and 60 < 177 dimensions takes the low-rank path.
    for features, n in (("classifier", "1100"), ("offline", "60")):
        args = ["fid", str(gan), "--features", features, "-n", n, "--device", "cpu"]
        one = float(_one([*args, "--quiet"], tmp_path / f"one-{features}", monkeypatch, capsys))
        done = _two([*TORCHRUN, *args], tmp_path / f"two-{features}")
        assert len(done.stdout.strip().splitlines()) == 1          # rank 0 alone prints
        two = float(done.stdout)
        assert two == pytest.approx(one, rel=REL), features
        assert done.stderr.count(" FID of ") == 1 and "rank 0 of 2" in done.stderr and "on 2 processes" in done.stderr
        # The real statistics were computed on both ranks and written once, by rank 0: one process's.
        (path_one,), (path_two,) = ((tmp_path / f"{w}-{features}" / "stats").glob("*.npz") for w in ("one", "two"))
        assert path_one.name == path_two.name and path_two.with_suffix(".json").is_file()
        with np.load(path_one) as a, np.load(path_two) as b:
            np.testing.assert_allclose(b["mu"], a["mu"], rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(b["sigma"], a["sigma"], rtol=1e-9, atol=1e-12)
        assert not list((tmp_path / f"two-{features}" / "stats").glob(".*tmp*"))
        measured.append(f"fid {features} n={n}: one process {one!r}, two processes {two!r}")
    lines = _eval_lines(gan)[before:]
    assert len(lines) == 4                               # one line per fid: rank 1 never records
    assert [x["features"] for x in lines] == ["classifier", "classifier", "offline", "offline"]
    for a, b in (lines[:2], lines[2:]):
        assert b["value"] == pytest.approx(a["value"], rel=REL) and b["n"] == a["n"] and b["stats_key"] == a["stats_key"]
    print("\n".join(measured))


def test_eval_with_the_nproc_flag_equals_one_process(runs, tmp_path, monkeypatch, capsys):
    """An ACGAN: classifier FID, coverage, precision / recall, offline metrics, ACGAN accuracy and
    recognised-as-requested; `--nproc 2` starts torchrun itself (and passes `--n` on as `-n`)."""
    acgan = runs / "acgan"
    before = len(_eval_lines(acgan)) if (acgan / "eval.jsonl").is_file() else 0
    args = ["eval", str(acgan), "--n", "600", "--device", "cpu", "--quiet"]
    one = json.loads(_one(args, tmp_path / "one", monkeypatch, capsys))
    done = _two([sys.executable, "-m", "gm", *args, "--nproc", "2"], tmp_path / "two")
    assert len(done.stdout.strip().splitlines()) == 1
    two = json.loads(done.stdout)
    assert {"acgan_accuracy", "recognised_as_requested", "fid_offline", "precision", "density_offline"} <= set(one)
    compared = _assert_same(one, two)
    assert compared > 20
    print(f"eval acgan: {compared} numbers equal; fid_classifier {one['fid_classifier']!r} vs "
          f"{two['fid_classifier']!r}, recall {one['recall']!r} vs {two['recall']!r}")
    lines = _eval_lines(acgan)[before:]
    assert len(lines) % 2 == 0 and lines
    half = len(lines) // 2
    for a, b in zip(lines[:half], lines[half:]):      # one process's lines, then rank 0's, alike
        _assert_same({k: v for k, v in a.items() if k != "time"}, {k: v for k, v in b.items() if k != "time"})


@pytest.mark.parametrize("name,n", [("vae", "600"), ("stargan", "150")])
def test_eval_of_mig_and_translation_on_two_processes(runs, tmp_path, monkeypatch, capsys, name, n):
    """A VAE on dSprites (MIG: 600 real images encoded in batches of 500 across the ranks) and a
    StarGAN (150 images per pair in batches of 100: every pair split between the ranks); --no-record."""
    args = ["eval", str(runs / name), "-n", n, "--device", "cpu", "--quiet", "--no-record"]
    one = json.loads(_one(args, tmp_path / f"one-{name}", monkeypatch, capsys))
    done = _two([*TORCHRUN, *args], tmp_path / f"two-{name}")
    two = json.loads(done.stdout)
    assert ("mig" in one) if name == "vae" else (one["kind"] == "translation")
    compared = _assert_same(one, two)
    assert compared > 10
    key = "mig" if name == "vae" else "target_accuracy"
    print(f"eval {name}: {compared} numbers equal; {key} {one[key]!r} vs {two[key]!r}")


_API_SCRIPT = r'''
import json, sys
import numpy as np, torch
from gm.runs.distributed import join, leave
from gm.metrics.evaluate import evaluate, fid

class Pool:
    """A cheap stand-in for Inception: 4x4 average pooling of the grey image (49-d)."""
    kind, name, weights_hash, device = "inception", "avgpool-4", "-", torch.device("cpu")
    def __init__(self, batch_size):
        self.batch_size, self.dims = batch_size, 49
    def __call__(self, images):
        return torch.nn.functional.avg_pool2d(images.float().mean(1, keepdim=True), 4).flatten(1).double().numpy()

run, data, cache, a, b = sys.argv[1:6]
group = join("cpu")
kw = dict(device="cpu", data_dir=data, record=False)


def measure(where, group=None):
    # 40 images in batches of 8: rank 0 measures 16, rank 1 24; 40 < 49 dimensions: the rows are
    # gathered for the low-rank path, as one process keeps them.
    return {"fid": fid(run, n=40, extractor=Pool(8), cache_folder=f"{cache}/{where}", group=group, **kw).value,
            "eval": evaluate(run, n=300, inception=True, inception_extractor=Pool(64),
                             cache_folder=f"{cache}/{where}-e", group=group, **kw),
            # two images .npz files (30 and 45 images: both sources sharded), and eval of one of them
            "files": fid(a, b, extractor=Pool(8), group=group, **kw).value,
            "eval_files": evaluate(b, dataset="mnist", n=100, cache_folder=f"{cache}/{where}-f", group=group,
                                   **kw)}


two = measure("two", group)
group.barrier()
if group.is_main:
    print(json.dumps({"one": measure("one"), "two": two}))
group.barrier()
leave(group)
'''


def test_python_api_with_a_group_equals_one_process(runs, tmp_path):
    """fid() and evaluate(inception=True) take a process group: Inception-like statistics are summed
    over the ranks (here a cheap 49-d stand-in, so that fewer images than dimensions are tried too)."""
    script = tmp_path / "api.py"
    script.write_text(_API_SCRIPT)
    rng = np.random.default_rng(0)
    for name, count in (("a", 30), ("b", 45)):
        np.savez(tmp_path / f"{name}.npz", images=rng.integers(0, 256, (count, 28, 28), dtype=np.uint8))
    cmd = [*TORCHRUN[:-2], str(script), str(runs / "gan"), str(SHARED_DATA), str(tmp_path / "cache"),
           str(tmp_path / "a.npz"), str(tmp_path / "b.npz")]
    done = _two(cmd, tmp_path / "cache")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    for key in ("fid", "files"):
        assert out["one"][key] == pytest.approx(out["two"][key], rel=REL), key
    assert _assert_same(out["one"]["eval"], out["two"]["eval"]) > 20
    assert _assert_same(out["one"]["eval_files"], out["two"]["eval_files"]) > 20
    assert "fid_inception" in out["two"]["eval"]
    print(f"api: fid {out['one']['fid']!r} vs {out['two']['fid']!r}; files {out['one']['files']!r} vs "
          f"{out['two']['files']!r}; fid_inception {out['one']['eval']['fid_inception']!r} vs "
          f"{out['two']['eval']['fid_inception']!r}")


def test_nproc_errors_are_one_sentence(tmp_path, capsys):
    for command in (["fid", str(tmp_path)], ["eval", str(tmp_path)], ["stats", "mnist"]):
        assert main([*command, "--nproc", "0"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == ["error: --nproc must be between 1 and 256; got 0."], err
    # A mistake every rank would meet is said once, before torchrun starts (no launcher report).
    done = subprocess.run([sys.executable, "-m", "gm", "fid", str(tmp_path / "missing"), "--nproc", "2"], cwd=REPO,
                          env=_env(tmp_path / "cache"), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "does not exist" in done.stderr, done.stderr


def test_shards_are_contiguous_runs_of_whole_batches():
    from gm.metrics.sharding import local_count, shard

    assert shard(1100, 500, None) == (0, 1100)
    for total, size, world in ((1100, 500, 2), (60, 500, 2), (5000, 16, 3), (7, 1, 4), (0, 8, 2), (250, 50, 5)):
        parts = [shard(total, size, SimpleNamespace(rank=r, world_size=world)) for r in range(world)]
        assert parts[0][0] == 0 and parts[-1][1] == total
        assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))           # contiguous, each image once
        assert all(lo % size == 0 for lo, hi in parts if hi > lo)           # whole batches of one process
        counts = [hi - lo for lo, hi in parts]
        assert max(counts) - min(counts) <= size                           # balanced to a batch
        assert sum(local_count(total, size, SimpleNamespace(rank=r, world_size=world)) for r in range(world)) == total
