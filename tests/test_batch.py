"""cxr batch: planning, resuming after a kill, failing runs, and the Dask executor."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import FIXED_EPOCH_S_AT_BATCH_4, tiny_batch_args, tiny_plan

from cxrlib import batch, cli, runs
from cxrlib.errors import ConfigError


def _results(out: Path) -> dict:
    """metrics.json of every run, without what legitimately differs (time, paths)."""
    found = {}
    for path in sorted(out.glob("*/*/*/metrics.json")):
        payload = json.loads(path.read_text())
        for key in ("timings_s", "paths", "environment", "features"):
            payload.pop(key, None)
        found[str(path.relative_to(out))] = payload
    return found


def test_plan_layout_and_selection(tmp_path: Path) -> None:
    plan = batch.plan("sample", tmp_path, tmp_path / "out")
    assert len(plan.runs) == 4 * 10 + 2 * 5
    folders = {str(r.out_dir.relative_to(tmp_path / "out")) for r in plan.runs}
    assert "prognet/resnet50/seed-9" in folders and "detector/cnn_lstm/fold-4" in folders
    small = batch.plan("paper", tmp_path, tmp_path / "out", backbones=["vgg16"], seeds=[3],
                       models=["cnn"], folds=[1], overrides={"weights": None, "epochs": 2})
    prognet_run, detector_run = small.runs
    assert prognet_run.parameters["image_size"] == 224 and prognet_run.parameters["weights"] is None
    assert detector_run.parameters["epochs"] == 2 and detector_run.parameters["fold"] == 1


def test_detector_runs_start_first_and_the_plan_keeps_its_order(tmp_path: Path) -> None:
    plan = batch.plan("quick", tmp_path, tmp_path / "out")
    order = [r.notebook for r in batch.run_order(plan.runs)]
    assert order == ["detector"] * 4 + ["prognet"] * 4
    assert [r.notebook for r in plan.runs][:4] == ["prognet"] * 4  # the plan itself is unchanged


def test_plan_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown profile"):
        batch.plan("nope", tmp_path, tmp_path)
    with pytest.raises(ConfigError, match="unknown backbone"):
        batch.plan("sample", tmp_path, tmp_path, backbones=["resnet18"])
    with pytest.raises(ConfigError, match="no notebook has parameter"):
        batch.plan("sample", tmp_path, tmp_path, overrides={"learning_rat": 1})


def test_batch_options_do_not_import_tensorflow() -> None:
    """The shared names live in ``cxrlib.names``: ``cxr batch --help`` needs no TensorFlow."""
    code = ("import sys; from cxrlib import batch, cli; cli.build_parser(); "
            "print(batch.BACKBONES, 'tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], check=True)
    assert done.stdout.split()[-1] == "False" and "resnet50" in done.stdout


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_runs")
def test_a_batch_on_a_warm_cache_starts_without_tensorflow(tiny_runs: Path, tiny_cache: Path,
                                                           sample_dir: Path,
                                                           tmp_path: Path) -> None:
    """Checking the runs and finding their features cached (tiny_runs made them) needs no
    TensorFlow, so a resumed or repeated `cxr batch` starts its runs in about a second
    instead of after importing it (about 5 s here); the kernels import it themselves."""
    code = ("import sys; from pathlib import Path; "
            f"sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            "from conftest import tiny_plan; from cxrlib import batch; "
            f"plan = tiny_plan(Path({str(sample_dir)!r}), Path({str(tmp_path / 'out')!r}), "
            f"Path({str(tiny_cache)!r})); "
            "batch.prepare_features(plan, progress=False); "
            "print([r.status for r in plan.runs], 'tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], check=True)
    assert "'failed'" not in done.stdout and done.stdout.split()[-1] == "False", done.stdout
    assert not (tmp_path / "out").exists()


def test_paper_gpu_profile_plans_the_published_detector_offline(tmp_path: Path) -> None:
    from cxrlib import detector

    plan = batch.plan("paper-gpu", tmp_path, tmp_path / "out")
    detector_runs = [r for r in plan.runs if r.notebook == "detector"]
    assert len(detector_runs) == 2 * 5
    for run in detector_runs:
        config = detector.config_from(batch.run_parameters(run))
        assert (config.base, config.weights, config.trainable) == ("paper", None, True)
        assert (config.image_size, config.epochs, config.learning_rate) == (224, 200, 1e-4)
        assert config.n_per_class == detector.PAPER_COUNTS and config.early_stopping is None
        assert config.dropout == 0.0
    cpu = batch.plan("paper", tmp_path, tmp_path / "out", models=["cnn"], folds=[0])
    assert cpu.runs[-1].parameters["base"] == "vgg16"
    batch.prepare_features(batch.plan("paper-gpu", tmp_path, tmp_path / "out", backbones=[],
                                      models=["cnn"], folds=[0]), progress=False)
    assert not (tmp_path / "out").exists()  # end to end: no data read, nothing cached


def test_preparing_a_batch_logs_each_data_warning_once(tmp_path: Path, monkeypatch,
                                                       caplog) -> None:
    import logging

    plan = batch.plan("quick", tmp_path, tmp_path / "out", cache_dir=tmp_path / "cache")
    data_log = logging.getLogger("cxrlib.data")

    def prepare(run, plan, done, progress):  # every run reads the same data
        data_log.warning("left out 3 listed image(s) whose file is missing or empty")
        data_log.warning("run %s read", run.label)
        return run.label

    monkeypatch.setattr(batch, "_prepare_one", prepare)
    with caplog.at_level(logging.WARNING, logger="cxrlib.data"):
        batch.prepare_features(plan, progress=False)
        data_log.warning("left out 3 listed image(s) whose file is missing or empty")
    messages = [r.getMessage() for r in caplog.records]
    assert len(plan.runs) > 2
    assert messages.count("left out 3 listed image(s) whose file is missing or empty") == 2
    assert sum(m.endswith(" read") for m in messages) == len(plan.runs)  # others untouched


def test_cost_of_end_to_end_runs_is_measured_and_printed(tmp_path: Path, fixed_step_cost: list,
                                                         capsys: pytest.CaptureFixture) -> None:
    """``end_to_end_cost`` measures each end-to-end model once, with its runs' own
    settings, and extrapolates to all their runs (the measurement answers fixed seconds:
    conftest's ``fixed_step_cost``)."""
    small = {"image_size": 32, "batch_size": 4, "epochs": 10}
    plan = batch.plan("paper-gpu", tmp_path, tmp_path / "out", backbones=[], folds=[0, 1],
                      overrides=small)
    from cxrlib.cost import cost_message

    cost = batch.end_to_end_cost(plan, steps=1, progress=False)
    assert fixed_step_cost == [(kind, "paper", True, 32, 4, 10, 1, 1)
                               for kind in ("cnn", "cnn_lstm")]
    said = capsys.readouterr().out  # before measuring: what it times, and that a bar follows
    assert said.startswith("Estimating") and "4 timed steps" in said and "cnn, cnn_lstm" in said
    assert list(cost["model"]) == ["cnn", "cnn_lstm"] and (cost["runs"] == 2).all()
    assert (cost["images"] == 421).all() and (cost["s_per_step"] == 0.5).all()
    # 10 epochs, twice per run (the shortcut audit), 2 runs per model
    epoch_s = FIXED_EPOCH_S_AT_BATCH_4
    assert (cost["s_per_epoch"] == epoch_s).all() and cost["audit"].all()
    assert cost["hours"].tolist() == pytest.approx([2 * 2 * 10 * epoch_s / 3600] * 2)
    message = cost_message(cost)
    assert "0.50 s/step" in message and "x 10 epochs x 2 run(s)" in message
    assert f"total: {cost['hours'].sum():.1f} h" in message and "PU" in message  # CPU or GPU
    frozen = batch.plan("quick", tmp_path, tmp_path / "out", backbones=[], overrides=small)
    assert batch.end_to_end_cost(frozen) is None
    assert len(fixed_step_cost) == 2  # the frozen detector's runs are not measured


def test_paper_profile_without_network_stops_in_one_line_before_any_run(sample_dir: Path,
                                                                        tmp_path: Path) -> None:
    """The README's paper command on a machine that cannot reach Keras' weights server
    (a proxy nobody listens on) and an empty Keras folder: one line naming the weights
    file and the three ways out; no run folder, no kernel."""
    dead = "http://127.0.0.1:9"
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras"), "https_proxy": dead,
           "HTTPS_PROXY": dead, "http_proxy": dead, "HTTP_PROXY": dead, "no_proxy": "",
           "NO_PROXY": ""}
    done = subprocess.run(_cli("--profile", "paper", "--data-dir", str(sample_dir), "--out",
                               str(tmp_path / "out"), "--backbones", "vgg16", "--seeds", "0",
                               "--models", "cnn", "--folds", "0", "--quiet"),
                          capture_output=True, text=True, env=env, timeout=600,
                          cwd=Path(__file__).resolve().parents[1])
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("cxr: error: cannot fetch the ImageNet weights of vgg16 "
                               "(vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
    for way_out in ("-p weights none", "-p weights PATH", "Keras' cache folder",
                    str(tmp_path / "keras" / "models")):
        assert way_out in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_failing_run_is_reported_and_the_others_complete(sample_dir: Path, tiny_cache: Path,
                                                         tmp_path: Path) -> None:
    plan = tiny_plan(sample_dir, tmp_path / "out", tiny_cache)
    plan.runs[1].parameters["seq_len"] = 50  # no patient has 50 images: the notebook fails
    with batch.Workers(2) as pool:  # both batches in the same two warm kernels
        finished = batch.run_all(plan, pool=pool, progress=False)
        status = {run.label: run.status for run in finished}
        assert status == {"prognet alexnet seed 0": "ok", "prognet alexnet seed 1": "failed",
                          "detector cnn fold 0": "ok"}
        failed = plan.runs[1]
        assert (failed.out_dir.with_name("seed-1.failed") / "02_prognet.ipynb").is_file()
        assert failed.failed_notebook == str(failed.out_dir.with_name("seed-1.failed") / "02_prognet.ipynb")
        assert failed.error.startswith("DataError:")  # the notebook's exception, not papermill's
        assert not failed.out_dir.exists()
        assert runs.is_finished(plan.runs[0].out_dir) and runs.is_finished(plan.runs[2].out_dir)
        # started again, the finished runs are skipped and the failed one is tried again,
        # in a kernel that has run (and perhaps failed) a notebook already
        again = batch.run_all(plan, pool=pool, progress=False)
    assert [r.status for r in again] == ["skipped (finished)", "failed", "skipped (finished)"]
    assert again[1].error.startswith("DataError:")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cxrlib.cli", "batch", *args]


def _tables(out: Path) -> dict[str, bytes]:
    """Every CSV the runs wrote (predictions, curves), byte for byte."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.glob("*/*/*/*.csv"))}


def _figures(out: Path) -> dict[str, bytes]:
    """Every PNG figure the runs wrote (learning curves, confusion), byte for byte."""
    return {str(p.relative_to(out)): p.read_bytes()
            for p in sorted(out.glob("*/*/*/figures/*.png"))}


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_runs")
def test_killed_batch_resumes_to_identical_results(tiny_runs: Path, tiny_cache: Path,
                                                   sample_dir: Path, tmp_path: Path,
                                                   capfd: pytest.CaptureFixture) -> None:
    """A batch killed mid-way and started again ends with what an uninterrupted one
    writes. The uninterrupted one is the session's tiny_runs: the detector (with its
    shortcut audit), then ProgNet seeds 0 and 1, in one warm kernel. The killed one is a
    `cxr batch` process with the same options, killed during seed 1; started again
    through the command's own entry point (console filter included) with
    --fresh-kernels, it runs seed 1 alone in a new kernel. So this also shows that a
    run made in a kernel that has run two notebooks before it computes the numbers a
    fresh kernel computes."""
    common = tiny_batch_args(sample_dir, tiny_cache)  # tiny_runs' features: warm
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    whole = tiny_runs
    assert json.loads((whole / "batch.json").read_text())["warm_kernels"] is True

    killed = tmp_path / "killed"
    with open(tmp_path / "killed.log", "w") as console:
        process = subprocess.Popen(_cli(*common, "--out", str(killed)), env=env,
                                   stdout=console, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        # the last run (seed 1) under way: papermill has written its notebook, it has not
        # finished (a run takes over a second); then kill the whole process group
        under_way = killed / "prognet/alexnet/seed-1.partial/02_prognet.ipynb"
        deadline = time.time() + 300
        while time.time() < deadline and not under_way.is_file():
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert runs.is_finished(killed / "detector/cnn/fold-0")
    assert runs.is_finished(killed / "prognet/alexnet/seed-0")
    assert not runs.is_finished(killed / "prognet/alexnet/seed-1") and under_way.is_file()
    unfinished = [p for p in killed.glob("*/*/*") if p.is_dir() and not runs.is_finished(p)]
    assert [p.name for p in unfinished] == ["seed-1.partial"]  # half-done does not look finished
    printed = (tmp_path / "killed.log").read_text()
    for noise in ("ERROR", "Traceback", "use_unbounded_threadpool"):
        assert noise not in printed  # a quiet console when all is well, up to the kill

    capfd.readouterr()
    assert cli.main(["batch", *common, "--out", str(killed), "--fresh-kernels"]) == 0
    out, err = capfd.readouterr()
    assert "3 runs: 2 skipped (finished), 1 ok" in out  # only the killed run again
    assert json.loads((killed / "batch.json").read_text())["warm_kernels"] is False
    for noise in ("ERROR", "Traceback", "KeyboardInterrupt", "use_unbounded_threadpool"):
        assert noise not in out + err  # its kernels' shutdown included
    assert _results(killed) == _results(whole)
    assert len(_results(whole)) == 3
    assert len(_tables(whole)) == 7 and _tables(killed) == _tables(whole)
    assert len(_figures(whole)) == 4 and _figures(killed) == _figures(whole)


@pytest.mark.slow
def test_dask_executor_on_a_local_cluster(sample_dir: Path, tiny_cache: Path,
                                          tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        plan = tiny_plan(sample_dir, tmp_path / "out", tiny_cache)
        plan.runs = plan.runs[1:]  # one ProgNet and one detector run, side by side
        batch.prepare_features(plan, progress=False)
        with distributed.Client(cluster.scheduler_address) as client:
            finished = batch.run_all(plan, submit=client.submit, progress=False)
    assert [r.status for r in finished] == ["ok", "ok"], [r.error for r in finished]
    assert all(runs.is_finished(r.out_dir) for r in finished)


@pytest.mark.slow
def test_reports_include_the_data_chapter(sample_dir: Path, tmp_path: Path) -> None:
    plan = batch.plan("quick", sample_dir, tmp_path / "out", cache_dir=tmp_path / "cache")
    (explore,) = batch.run_reports(plan, reports=("explore",))
    assert explore.status == "ok", explore.error
    assert (tmp_path / "out" / "01_data_exploration.ipynb").is_file()
    assert (tmp_path / "out" / "exploration" / "summary.json").is_file()
    assert any((tmp_path / "out" / "exploration" / "figures").glob("*.png"))


def test_workers_keep_one_kernel_per_thread_and_shut_them_down(monkeypatch) -> None:
    """batch.Workers: each thread executes its items in one warm kernel of its own (the
    runs', then the reports'), the items run side by side, and leaving the pool shuts
    every kernel down. No kernel process starts: a WarmKernel starts one on first use."""
    import threading

    stopped = []
    monkeypatch.setattr(runs.WarmKernel, "shutdown", lambda self: stopped.append(self))
    both = threading.Barrier(2, timeout=30)  # passes only if two items run at once
    seen = []

    def work(item, kernel):
        both.wait()
        seen.append((threading.get_ident(), kernel))
        return item

    with batch.Workers(2) as pool:
        assert sorted(pool.as_completed(work, range(4))) == [0, 1, 2, 3]
        assert sorted(pool.as_completed(work, ["a", "b"])) == ["a", "b"]  # the same kernels
    kernel_of = {}
    for thread, kernel in seen:
        assert isinstance(kernel, runs.WarmKernel)
        assert kernel_of.setdefault(thread, kernel) is kernel
    assert len(kernel_of) == 2 and len({id(k) for k in kernel_of.values()}) == 2
    assert sorted(map(id, stopped)) == sorted(id(k) for k in kernel_of.values())
    with batch.Workers(1, warm_kernels=False) as pool:  # a fresh kernel per notebook
        assert list(pool.as_completed(lambda item, kernel: kernel, [1])) == [None]


def test_reports_run_side_by_side_and_come_back_in_order(monkeypatch, tmp_path: Path) -> None:
    import threading

    both = threading.Barrier(2, timeout=30)

    def fake_report(plan, name, kernel):
        if name in ("qualitative", "comparisons"):  # the two longest start first, together
            both.wait()
        return batch.Run(name, plan.out, {}, name, status="ok")

    monkeypatch.setattr(batch, "_run_report", fake_report)
    monkeypatch.setattr(runs.WarmKernel, "shutdown", lambda self: None)
    plan = batch.plan("quick", tmp_path, tmp_path / "out")
    with batch.Workers(2) as pool:
        done = batch.run_reports(plan, pool=pool)
    assert [r.label for r in done] == list(batch.REPORTS)
    assert batch.REPORTS[:2] == ("qualitative", "comparisons")
