"""The report: figures from hand-made outputs (coverage-class scores, missing folds), progress and retry
logs, then the tiny DAG's `snakemake --report` checked figure by figure and rendered in headless Chromium."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, TINY_CONFIG, run_snakemake
from saltnet.report import coverage_class, overview_figure, scores_by_coverage, training_figure
from saltnet.report import examples as examples_module
from saltnet.report.oof_figures import oof_figures
from saltnet.report.run_page import run_report
from saltnet.report.training import STAGES

PNG, JPEG = b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CAPTIONS = sorted((REPO / "workflow/report").glob("*.rst"))


def figure_paths(folds) -> dict[str, str]:
    """{path: category} of every figure the report of a complete run holds."""
    paths = {f"results/report/training/{stage}_fold{k}.png": "Training" for stage in STAGES for k in folds}
    paths["results/report/training/overview.png"] = "Training"
    paths.update({f"results/report/oof/{n}.png": "Out-of-fold" for n in ("scores", "threshold", "coverage")})
    paths.update({f"results/report/examples/{n}.jpg": "Examples" for n in ("oof_worst", "oof_best", "test_sample")})
    paths.update({"results/report/run/run.html": "The run", "results/report/run/job_times.png": "The run"})
    return paths


# ---- hand-made outputs ---------------------------------------------------------------------------------


def square_masks(sides: list[int], size: int = 10) -> np.ndarray:
    """(N, size, size) bool: mask i is a side x side square in the corner (0: empty)."""
    masks = np.zeros((len(sides), size, size), dtype=bool)
    for i, side in enumerate(sides):
        masks[i, :side, :side] = True
    return masks


def test_coverage_classes_follow_the_share_of_salt():
    # 10x10 images: 0, 1, 10, 16, 49, 50, 51 and 100 salt pixels
    truth = np.zeros((8, 10, 10), dtype=bool)
    for i, n in enumerate([0, 1, 10, 16, 49, 50, 51, 100]):
        truth[i].flat[:n] = True
    assert coverage_class(truth).tolist() == ["empty", "small", "small", "medium", "medium", "medium", "large",
                                              "large"]


def test_scores_by_coverage_class_by_hand():
    truth = square_masks([0, 0, 2, 5, 9])  # empty, empty, small (4%), medium (25%), large (81%)
    pred = square_masks([0, 3, 2, 0, 8])  # right, spurious, exact, missed, IoU 64/81 = 0.79
    table = scores_by_coverage(pred, truth).set_index("coverage")
    assert table["n"].tolist() == [2, 1, 1, 1]
    assert table.loc["empty", "score"] == 0.5 and table.loc["small", "score"] == 1.0
    assert table.loc["medium", "score"] == 0.0
    assert table.loc["large", "score"] == pytest.approx(0.6)  # 0.79 beats 0.50, 0.55, ..., 0.75: 6 of 10
    assert table.loc["empty", "lost"] == pytest.approx(1 / 5) and table.loc["medium", "lost"] == pytest.approx(0.2)
    overall = (1 + 0 + 1 + 0 + 0.6) / 5
    assert 1 - table["lost"].sum() == pytest.approx(overall)


def test_a_class_without_images_has_no_score():
    table = scores_by_coverage(square_masks([0, 1]), square_masks([0, 1])).set_index("coverage")
    assert table.loc["large", "n"] == 0 and np.isnan(table.loc["large", "score"]) and table.loc["large", "lost"] == 0


def fake_history(epochs: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"epoch": np.arange(epochs), "train_loss": np.linspace(1, 0.4, epochs),
                         "valid_loss": np.linspace(1.1, 0.6, epochs) + rng.normal(0, 0.02, epochs),
                         "map_iou": np.linspace(0.3, 0.7, epochs) + rng.normal(0, 0.02, epochs),
                         "lr": np.sin(np.linspace(0.1, 3.0, epochs)) * 1e-3, "seconds": rng.uniform(50, 60, epochs)})


def write_fold_stage(root: Path, stage: str, fold: int, epochs: int = 6) -> None:
    folder = root / "results" / stage / f"fold{fold}"
    folder.mkdir(parents=True)
    history = fake_history(epochs, fold)
    history.to_parquet(folder / "history.parquet")
    (folder / "run.json").write_text(json.dumps({
        "fold": fold, "size": 128, "epochs": epochs, "best_epoch": int(history["map_iou"].argmax()),
        "best_map_iou": float(history["map_iou"].max()), "device": "cpu", "precision": "fp32",
        "precision_reason": "no native bf16", "threads": 2,
        "seconds": 321.0, "resumed_from_epoch": 0}))


def stage_paths(root: Path, name: str, folds) -> dict[str, dict[int, str]]:
    return {stage: {k: str(root / "results" / stage / f"fold{k}" / name) for k in folds} for stage in STAGES}


def test_training_figure_from_a_history(tmp_path):
    write_fold_stage(tmp_path, "finetune", 3)
    out = tmp_path / "fig.png"
    folder = tmp_path / "results/finetune/fold3"
    training_figure(folder / "history.parquet", folder / "run.json", 3, "finetune", out)
    assert out.read_bytes().startswith(PNG) and out.stat().st_size > 20_000


def test_a_weight_averaged_stage_says_so_in_its_title():
    from saltnet.report.training import _stage_title

    history = fake_history(7, 0)
    run = {"size": 128, "epochs": 7, "device": "cpu", "precision": "fp32"}
    assert "averaged" not in _stage_title(0, "finetune", run, history, 3)
    assert _stage_title(0, "finetune", {**run, "swa": 3}, history, 3).endswith(
        "; model: weights of epochs 5-7 averaged (swa)")


def test_overview_draws_the_folds_that_exist_and_names_the_missing(tmp_path):
    """A run where fold 1 failed in fine-tuning and fold 2 never trained (--keep-going)."""
    write_fold_stage(tmp_path, "train", 0)
    write_fold_stage(tmp_path, "finetune", 0)
    write_fold_stage(tmp_path, "train", 1)
    out = tmp_path / "overview.png"
    missing = overview_figure(stage_paths(tmp_path, "history.parquet", [0, 1, 2]), out)
    assert missing == ["fold 2 train", "fold 1 finetune", "fold 2 finetune"]
    assert out.read_bytes().startswith(PNG)


def test_run_page_lists_what_is_missing(tmp_path):
    write_fold_stage(tmp_path, "train", 0)
    bench = tmp_path / "benchmarks/train_fold/fold0.tsv"
    bench.parent.mkdir(parents=True)
    bench.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
                     "321.5\t0:05:21\t1500.2\t3000\t1400\t1450\t1\t2\t180.0\t600.1\n")
    (tmp_path / "run_info.json").write_text(json.dumps({"config": {"folds": {"n": 2}}, "git_commit": "abc123",
                                                         "packages": {"torch": "2.14.1"}, "python": "3.11"}))
    (tmp_path / "bench.json").write_text(json.dumps([{"model": "resunet_scse", "mode": "train", "img_per_s": 42.0,
                                                      "device": "cpu", "cpu_model": "EPYC"}]))
    expected = {"fold 0 train": str(tmp_path / "results/train/fold0/history.parquet"),
                "fold 1 train": str(tmp_path / "results/train/fold1/history.parquet")}
    missing = run_report(tmp_path / "run_info.json", stage_paths(tmp_path, "run.json", [0, 1]), [bench], expected,
                         tmp_path / "run.html", tmp_path / "times.png", tmp_path / "bench.json")
    page = (tmp_path / "run.html").read_text()
    assert missing == [f"fold 1 train: {expected['fold 1 train']}"] and "fold 1 train" in page
    for text in ("abc123", "2.14.1", "no native bf16", "321.5", "1500", "resunet_scse", "EPYC", "n: 2"):
        assert text in page, text
    assert (tmp_path / "times.png").read_bytes().startswith(PNG)


def hand_made_oof(root: Path, n: int = 40, size: int = 101) -> dict:
    """Packed train/test, two folds of OOF probabilities, an ensemble, postprocess.json and cv_score.json."""
    rng = np.random.default_rng(0)
    masks = np.zeros((n, size, size), dtype=np.uint8)
    for i in range(n):
        masks[i, : rng.integers(1, size), :] = i % 4 != 0  # a quarter empty, the rest any coverage
    images = rng.integers(0, 255, (n, size, size), dtype=np.uint8)
    ids = np.array([f"id{i:03d}" for i in range(n)])
    probs = np.clip(masks + rng.normal(0, 0.3, masks.shape), 0, 1).astype(np.float16)
    np.savez(root / "train.npz", ids=ids, images=images, masks=masks)
    np.savez(root / "test.npz", ids=ids[:20], images=images[:20])
    np.savez(root / "ensemble.npz", ids=ids[:20][::-1], probs=probs[:20][::-1])
    oof = {}
    for fold in (0, 1):
        np.savez(root / f"oof{fold}.npz", ids=ids[fold::2], probs=probs[fold::2])
        oof[fold] = str(root / f"oof{fold}.npz")
    from saltnet.evaluation.postprocess import choose_postprocess

    chosen = choose_postprocess(probs, masks)
    (root / "postprocess.json").write_text(json.dumps(chosen))
    cv = {"threshold": 0.5, "min_area": 0, "oof_map_iou": chosen["before"]["oof_map_iou"], "n_images": n,
          "per_fold": {"0": 0.6, "1": 0.7},
          "postprocessed": {**chosen["after"], "threshold_source": "searched on OOF",
                            "min_area_source": "searched on OOF", "per_fold": {"0": 0.65, "1": 0.75}}}
    (root / "cv_score.json").write_text(json.dumps(cv))
    return oof


def test_oof_and_example_figures_from_hand_made_predictions(tmp_path):
    oof = hand_made_oof(tmp_path)
    outs = [tmp_path / name for name in ("scores.png", "threshold.png", "coverage.png", "worst.jpg", "best.jpg",
                                         "test.jpg")]
    table = oof_figures(tmp_path / "train.npz", oof, tmp_path / "cv_score.json", tmp_path / "postprocess.json",
                        *outs[:3])
    assert table["n"].sum() == 40 and table.loc[table["coverage"] == "empty", "n"].item() == 10
    examples_module.examples_figures(tmp_path / "train.npz", tmp_path / "test.npz", oof, tmp_path / "ensemble.npz",
                                     tmp_path / "postprocess.json", *outs[3:])
    for out in outs:
        assert out.read_bytes().startswith(JPEG if out.suffix == ".jpg" else PNG), out


def test_worst_and_best_examples_by_hand():
    truth = square_masks([0, 0, 3, 5, 9])
    pred = square_masks([4, 0, 3, 0, 9])
    scores = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    worst, best = examples_module.worst_and_best(scores, truth, pred, n=3)
    assert worst.tolist() == [3, 0, 1]  # score 0 with the larger area error (25 px) first
    assert best.tolist() == [4, 2, 3]  # images with salt first: score 1 and the largest mask, then the rest


# ---- progress and retry logs ---------------------------------------------------------------------------


def test_epoch_line_names_fold_stage_size_and_time_left():
    from saltnet.training.callbacks import EpochHistory, epoch_line

    rows = [{"epoch": e, "train_loss": 0.8, "valid_loss": 0.7, "map_iou": 0.51, "lr": 2e-3, "seconds": 60.0}
            for e in range(3)]
    line = epoch_line(EpochHistory(None, 0, "train", 128).label, rows[-1], 16, rows)
    assert line == ("fold 0 train 128 px, epoch 3/16: train_loss=0.8 valid_loss=0.7 map_iou=0.51 lr=0.002 | "
                    "60.0 s, ~13 min 0 s left")
    assert epoch_line("fold 1 finetune 224 px", rows[-1], 3, rows).endswith("stage done")


def run_logged_job(log: Path, body: str) -> subprocess.CompletedProcess:
    """A job script in miniature: set up logging to `log`, log a line, then run `body`."""
    code = textwrap.dedent(f"""
        import logging
        from saltnet.runtime.jobs import setup_logging
        setup_logging({str(log)!r})
        logging.getLogger("saltnet").info("working")
    """) + body
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_a_retried_job_appends_to_its_log(tmp_path):
    """Snakemake deletes a job's log before every attempt; the attempts that did not finish stay in it."""
    log = tmp_path / "logs/train_fold/fold0.log"
    assert run_logged_job(log, "raise RuntimeError('out of memory')").returncode == 1
    log.unlink()
    run_logged_job(log, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")  # a time limit
    log.unlink()
    assert run_logged_job(log, "").returncode == 0
    text = log.read_text()
    headers = re.findall(r"===== attempt (\d)", text)
    assert headers == ["1", "2", "3"] and "RuntimeError: out of memory" in text
    assert "attempt 3 (the attempt before did not finish" in text and text.rstrip().endswith("job finished")
    log.unlink()
    assert run_logged_job(log, "").returncode == 0  # after a finished attempt: a new log
    assert re.findall(r"===== attempt (\d)", log.read_text()) == ["1"]


# ---- the tiny DAG and its report -------------------------------------------------------------------------


def report_results(html: str) -> dict:
    """The results the report embeds: {path: {caption, mime_type, data_uri, labels, ...}}."""
    match = re.search(r'<script id="results">\s*var results = (.*?);\s*</script>', html, re.S)
    return json.loads(match.group(1))


def decoded(entry: dict) -> bytes:
    return base64.b64decode(entry["data_uri"].split(",", 1)[1])


@pytest.fixture(scope="module")
def report_run(finished_run):
    """The tiny DAG run once for the session (with its report figures), then `snakemake --report`."""
    workdir = finished_run
    started = time.time()
    run_snakemake(workdir, "--report", "results/report.html")
    print(f"snakemake --report: {time.time() - started:.1f} s, "
          f"{(workdir / 'results/report.html').stat().st_size / 1e6:.2f} MB")
    return workdir


@pytest.mark.snakemake
def test_report_holds_every_figure_for_every_fold(report_run):
    results = report_results((report_run / "results/report.html").read_text())
    categories = json.loads(re.search(r"var categories = (.*?);\n", (report_run / "results/report.html").read_text(),
                                      re.S).group(1))
    folds = range(TINY_CONFIG["folds"]["n"])
    for path, category in figure_paths(folds).items():
        assert path in results, f"{path} is not in the report"
        entry = results[path]
        assert any(path in paths for paths in categories[category].values()), (path, category)
        assert entry["caption"].strip(), path
        if path.endswith(".png"):
            assert entry["mime_type"] == "image/png" and decoded(entry).startswith(PNG), path
        if path.endswith(".jpg"):
            assert entry["mime_type"] == "image/jpeg" and decoded(entry).startswith(JPEG), path
    for stage in STAGES:
        for k in folds:
            entry = results[f"results/report/training/{stage}_fold{k}.png"]
            assert entry["labels"] == {"fold": str(k), "stage": stage}
            assert f"fold {k}, stage {stage}" in entry["caption"]
    page = decoded(results["results/report/run/run.html"]).decode()
    assert "every expected output exists" in page and "resunet_scse" in page


@pytest.mark.snakemake
def test_logs_name_fold_stage_and_progress(report_run):
    train = (report_run / "logs/train_fold/fold0.log").read_text()
    assert re.search(r"fold 0 train 48 px, epoch 1/1: train_loss=\S+ valid_loss=\S+ map_iou=\S+ lr=\S+ \| "
                     r"[\d.]+ s, stage done", train), train[-2000:]
    finetune = (report_run / "logs/finetune_fold/fold1.log").read_text()
    assert "fold 1 finetune 64 px, epoch 1/1:" in finetune
    predict = (report_run / "logs/predict_fold/fold0.log").read_text()
    assert re.search(r"fold 0 test: 8/8 images \(100%\)", predict) and "fold 0 out-of-fold: " in predict
    assert train.count("===== attempt 1,") == 1 and train.rstrip().endswith("job finished")


@pytest.mark.snakemake
def test_report_of_a_run_where_a_fold_failed(report_run, tmp_path):
    """What --keep-going leaves when fold 1's fine-tuning fails: nothing downstream of it. Target
    report_partial draws what exists, and the report names what is missing."""
    workdir = tmp_path / "run"
    shutil.copytree(report_run, workdir, symlinks=True)
    for name in ("finetune/fold1", "predict/fold1", "ensemble", "postprocess.json", "cv_score.json",
                 "submission.csv", "report", "report.html"):
        path = workdir / "results" / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    run_snakemake(workdir, "report_partial")
    run_snakemake(workdir, "--report", "results/report.html", "report_partial")
    results = report_results((workdir / "results/report.html").read_text())
    shown = {p for p in results if p.startswith("results/report/")}
    assert shown == {"results/report/training/train_fold0.png", "results/report/training/finetune_fold0.png",
                     "results/report/training/train_fold1.png", "results/report/partial/overview.png",
                     "results/report/partial/run.html", "results/report/partial/job_times.png"}
    page = decoded(results["results/report/partial/run.html"]).decode()
    for missing in ("fold 1 finetune", "fold 1 predictions", "cv_score.json", "submission.csv"):
        assert missing in page, missing
    assert "fold 1 finetune" in (workdir / "logs/report_overview/report_overview_partial.log").read_text()


# ---- in a real browser -----------------------------------------------------------------------------------

# Once the app has rendered, shows each result's description in turn (as a click on it would, rendered at
# once by flushSync) and keeps the text the page showed.
_WALK_RESULTS = """<script>
(function walk() {
  if (typeof app === "undefined" || !app) {
    setTimeout(walk, 50);
    return;
  }
  const seen = [];
  for (const path of Object.keys(results)) {
    ReactDOM.flushSync(() => app.showResultInfo(path));
    seen.push(document.querySelector("#app").innerText);
  }
  const out = document.createElement("pre");
  out.id = "rendered";
  out.textContent = seen.join("\\n");
  document.body.appendChild(out);
})();
</script>"""


def chromium(*args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def with_script(report: Path, script: str, out: Path) -> Path:
    """A copy of the report with `script` before its closing body tag (the last: its libraries hold others)."""
    head, tag, tail = report.read_text(encoding="utf-8").rpartition("</body>")
    out.write_text(head + script + tag + tail, encoding="utf-8")
    return out


def caption_start(path: Path) -> str:
    """The first words of a caption as the page shows them (before any template field or markup)."""
    text = " ".join(path.read_text().split())
    return re.split(r"\{\{|``|\*\*", text)[0].strip()[:40]


@pytest.mark.snakemake
@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install chromium)")
def test_report_renders_its_captions_in_chromium(report_run, tmp_path):
    page = with_script(report_run / "results/report.html", _WALK_RESULTS, tmp_path / "walk.html")
    proc = chromium("--virtual-time-budget=60000", "--dump-dom", page.as_uri())
    rendered = re.search(r'<pre id="rendered">(.*?)</pre>', proc.stdout, re.S)
    assert rendered, proc.stderr[-3000:]
    text = " ".join(rendered.group(1).split())
    for caption in CAPTIONS:
        if caption.name != "workflow.rst":
            assert caption_start(caption) in text, caption.name
    assert "fold 1, stage finetune" in text


@pytest.mark.snakemake
@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install chromium)")
def test_report_landing_page_in_chromium(report_run, tmp_path):
    """The first page, as opened: the workflow description renders, and a screenshot can be taken."""
    proc = chromium("--virtual-time-budget=20000", "--dump-dom", (report_run / "results/report.html").as_uri())
    assert caption_start(REPO / "workflow/report/workflow.rst") in " ".join(proc.stdout.split())
    shot = tmp_path / "report.png"
    chromium("--virtual-time-budget=20000", "--window-size=1400,900", f"--screenshot={shot}",
             (report_run / "results/report.html").as_uri())
    assert shot.read_bytes().startswith(PNG)


def screenshot_report(report: Path, out: Path, figure: str = "results/report/oof/coverage.png") -> None:
    """A screenshot of the report showing one figure with its description (docs/report.png)."""
    show = f"""<script>
(function show() {{
  if (typeof app === "undefined" || !app) {{
    setTimeout(show, 50);
    return;
  }}
  const path = {json.dumps(figure)};
  app.setView({{navbarMode: "resultinfo", content: "img", resultPath: path, contentPath: results[path].data_uri}});
}})();
</script>"""
    page = with_script(report, show, out.with_suffix(".html"))
    chromium("--virtual-time-budget=20000", "--window-size=1700,760", f"--screenshot={out}", page.as_uri())
    out.with_suffix(".html").unlink()
    from PIL import Image

    shot = Image.open(out).convert("RGB")  # headless Chromium's page is shorter than its window: crop the rest
    height = max(y for y in range(shot.height) if shot.getpixel((2, y)) != (255, 255, 255)) + 1
    shot.crop((0, 0, shot.width, height)).save(out)


if __name__ == "__main__":  # python tests/test_report.py RUN_DIR docs/report.png: remake the screenshot
    screenshot_report(Path(sys.argv[1]) / "results/report.html", Path(sys.argv[2]).resolve())
