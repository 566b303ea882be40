"""Experiments: the experiment file expanded into runs, its mistakes refused before anything runs, run
folders never given another config, the leaderboard's paired gains on real files, and a real sweep of
the demo data with Snakemake (its rerun skips every finished run)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, SNAKEMAKE, TINY_CONFIG, require_marker
from saltnet.config.resolve import PRESETS, ConfigError, resolve_config
from saltnet.experiments.leaderboard import collect_runs, variant_gains
from saltnet.experiments.runner import check_run_folders, pipeline_command, write_run_config
from saltnet.experiments.spec import config_differences, load_experiment
from saltnet.runtime.atomic import write_json, write_npz
from test_report import CHROMIUM, PNG, chromium


def experiment(tmp_path: Path, name: str = "exp", **entries) -> Path:
    body = {"base": "cpu", "data_dir": str(tmp_path), **entries}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


# --- the file -----------------------------------------------------------------------------------------

def test_variants_times_seeds_make_the_runs(tmp_path):
    path = experiment(tmp_path, proxy={"folds": {"run": [0]}, "train": {"epochs": 3}}, seeds=[1, 2],
                      variants={"low_lr": {"finetune": {"lr": 5e-4}}}, vary={"aux_weight": [0.1, 0.5]})
    exp = load_experiment(path, runs_dir="runs")
    assert exp.baseline == "base" and list(exp.variants) == ["base", "low_lr", "aux_weight-0.1", "aux_weight-0.5"]
    assert [r.folder for r in exp.runs_of("aux_weight-0.1")] == ["runs/exp/aux_weight-0.1/seed1",
                                                                 "runs/exp/aux_weight-0.1/seed2"]
    cpu = yaml.safe_load((REPO / "workflow/presets/cpu.yaml").read_text())
    run = exp.runs_of("low_lr")[1]
    assert run.config["seed"] == 2 and run.config["folds"] == {"n": 4, "seed": 42, "run": [0]}
    # the proxy and the variant merge key by key into the preset's stages
    assert run.config["train"] == {**cpu["train"], "epochs": 3}
    assert run.config["finetune"] == {**cpu["finetune"], "lr": 5e-4}
    assert run.config["data_dir"] == str(tmp_path.resolve())


@pytest.mark.parametrize("path", sorted((REPO / "experiments").glob("*.yaml")), ids=lambda p: p.name)
def test_every_experiment_file_of_the_repository_expands(path):
    exp = load_experiment(path, data_dir="/data/tgs")
    assert exp.runs and all(run.variant in exp.variants for run in exp.runs)


def test_vary_of_two_keys_is_a_grid(tmp_path):
    exp = load_experiment(experiment(tmp_path, vary={"aux_weight": [0.1, 0.5], "train.lr": [1e-3, 2e-3]}))
    assert len(exp.variants) == 5 and "aux_weight-0.1_train.lr-0.002" in exp.variants
    assert exp.variants["aux_weight-0.5_train.lr-0.001"] == {"aux_weight": 0.5, "train": {"lr": 0.001}}
    assert [r.seed for r in exp.runs] == [None] * 5  # no seeds: each variant once, at the preset's seed


@pytest.mark.parametrize(("entries", "message"), [
    ({"variant": {}}, r"key variant: unknown \(known keys: analyses, base,"),
    ({"variants": {"x": {"aux_wieght": 0.1}}}, r"variant x, seed 1: config key aux_wieght: unknown"),
    ({"variants": {"x": {"folds": {"run": [4]}}}}, r"variant x, seed 1: config key folds.run: fold 4 is not one of"),
    ({"variants": {"x": 0.1}}, r"variant 'x': write a mapping of config keys"),
    ({"variants": {"base": {}}}, r"variant 'base': the name 'base' is the base preset"),
    ({"variants": {"a/b": {}}}, r"variant 'a/b': a folder name"),
    ({"vary": {"aux_weight": 0.1}}, r"vary key aux_weight: write a list of values"),
    ({"seeds": [1, 1]}, r"key seeds: \[1, 1\] names a seed twice"),
    ({"seeds": "1"}, r"key seeds: write a list of integers"),
    ({"seeds": [None, 1]}, r"key seeds: write a list of integers"),
    ({"baseline": "nope"}, r"key baseline: 'nope' is not a variant"),
    ({"analyses": ["snapshots"]}, r"analyses snapshots needs config key snapshots of at least 2"),
    ({"base": "cpuu"}, r"preset 'cpuu': neither workflow/presets/cpuu.yaml nor a file"),
])
def test_a_mistake_in_the_file_names_it(tmp_path, entries, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_experiment(experiment(tmp_path, **{"seeds": [1], **entries}))
    assert len(str(err.value).splitlines()) <= 3


def test_no_data_dir_is_refused(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text("base: cpu\n")
    with pytest.raises(ConfigError, match="data_dir: not set"):
        load_experiment(path)


def test_config_differences_name_dotted_keys():
    assert config_differences({"a": 1, "t": {"lr": 2, "e": 3}, "seed": 5}, {"a": 1, "t": {"lr": 1, "e": 3}, "seed": 4},
                              ignore=("seed",)) == {"t.lr": 2}


def test_the_leaderboard_names_no_key_that_one_config_only_states_at_its_default():
    """A baseline run whose config.yaml predates `repeat` against a variant stating `repeat: []` and a
    changed aux_weight: only aux_weight is a difference."""
    from saltnet.experiments.leaderboard import _differences

    base = {k: v for k, v in TINY_CONFIG.items() if k != "repeat"}
    variant = {**base, "repeat": [], "aux_weight": 0.123}
    assert _differences(variant, base) == {"aux_weight": 0.123}
    assert _differences({**variant, "repeat": ["small_masks"]}, base) == {"aux_weight": 0.123,
                                                                          "repeat": ["small_masks"]}


def test_the_leaderboard_names_an_inherited_stage_augment_once_and_a_stages_own_by_its_key():
    """A baseline recorded before stages stated their augment, against resolved variants (each stage's
    augment written in): the top-level change is named once; a stage's own augment by its stage."""
    from saltnet.experiments.leaderboard import _differences

    base = TINY_CONFIG  # as a config.yaml written before stages stated their augment
    resolved = resolve_config(overrides=TINY_CONFIG)
    assert _differences(resolved, base) == {}
    changed = resolve_config(overrides={**TINY_CONFIG, "augment": {**TINY_CONFIG["augment"], "p": 0.25}})
    assert _differences(changed, base) == {"augment.p": 0.25}
    own_finetune = {**TINY_CONFIG["finetune"], "augment": {"hflip": False}}
    own = resolve_config(overrides={**TINY_CONFIG, "finetune": own_finetune})
    assert _differences(own, base) == {f"finetune.augment.{k}": v for k, v in own["finetune"]["augment"].items()
                                       if v != TINY_CONFIG["augment"][k]}


def test_the_leaderboard_names_an_inherited_stage_loss_once():
    """A top-level loss change that the Lovasz stages inherit is one difference, `loss`; a stage's own loss
    is named by its stage."""
    from saltnet.experiments.leaderboard import _differences

    base = resolve_config([PRESETS / "cpu.yaml"])
    changed = resolve_config([PRESETS / "cpu.yaml"], {"loss": "lovasz_hinge"})
    assert _differences(changed, base) == {"loss": "lovasz_hinge"}
    own = resolve_config([PRESETS / "cpu.yaml"], {"pseudo": {**base["pseudo"], "loss": "lovasz_hinge"}})
    assert _differences(own, base) == {"pseudo.loss": "lovasz_hinge"}


# --- the run folders ----------------------------------------------------------------------------------

def test_a_run_folder_never_gets_another_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exp = load_experiment(experiment(tmp_path, vary={"aux_weight": [0.1]}))
    run = exp.runs_of("aux_weight-0.1")[0]
    write_run_config(Path(run.folder) / "config.yaml", run.config, "exp.yaml")
    check_run_folders(exp)  # the same config: fine
    changed = load_experiment(experiment(tmp_path, vary={"aux_weight": [0.1]}, proxy={"train": {"epochs": 2}}))
    with pytest.raises(ConfigError, match=r"variant aux_weight-0.1: runs/exp/aux_weight-0.1/config.yaml holds another"):
        check_run_folders(changed)
    before = (Path(run.folder) / "config.yaml").read_text()
    with pytest.raises(FileExistsError, match="never replaces"):
        write_run_config(Path(run.folder) / "config.yaml", changed.runs_of("aux_weight-0.1")[0].config, "exp.yaml")
    assert (Path(run.folder) / "config.yaml").read_text() == before


def test_a_key_added_to_the_schema_at_its_default_keeps_a_run_folder_its_own(tmp_path, monkeypatch):
    """A run written before the schema had `pseudo` and `repeat` is the same recipe as the file that now
    states their defaults; a value other than the default is another recipe."""
    monkeypatch.chdir(tmp_path)
    exp = load_experiment(experiment(tmp_path, vary={"aux_weight": [0.1]}))
    run = exp.runs_of("aux_weight-0.1")[0]
    older = {k: v for k, v in run.config.items() if k not in ("pseudo", "pseudo_labels", "repeat")}
    write_run_config(Path(run.folder) / "config.yaml", older, "exp.yaml")
    swa = run.config["train"].get("swa", 0)
    stated = load_experiment(experiment(tmp_path, vary={"aux_weight": [0.1]},
                                        proxy={"pseudo": None, "repeat": [], "train": {"swa": swa}}))
    check_run_folders(stated)
    with pytest.raises(ConfigError, match="holds another config"):
        check_run_folders(load_experiment(experiment(tmp_path, vary={"aux_weight": [0.1]},
                                                     proxy={"repeat": ["small_masks"]})))


def test_the_pipeline_command_resumes_and_never_retrains_for_code(tmp_path):
    cmd = pipeline_command(tmp_path, "Snakefile", ["results/cv_score.json"], 2, "--profile p", python="py")
    assert cmd[:3] == ["py", "-m", "snakemake"] and "--rerun-incomplete" in cmd
    assert cmd[cmd.index("--rerun-triggers") + 1] == "mtime" and cmd[cmd.index("--directory") + 1] == str(tmp_path)
    assert cmd[cmd.index("--configfile") + 1] == str(tmp_path / "config.yaml")
    assert cmd[-4:] == ["--profile", "p", "--", "results/cv_score.json"]


# --- the leaderboard on real files --------------------------------------------------------------------

def fake_run(folder: Path, truth: np.ndarray, hits: np.ndarray, seconds: float, first_id: int = 0) -> dict:
    """A run folder with the files the leaderboard reads: packed masks, fold 0's oof.npz (probabilities
    1 where the mask is salt on images `hits`, else 0: an image either scores 1 or 0), cv_score.json."""
    n = len(truth)
    ids = np.array([f"i{k}" for k in range(first_id, first_id + n)])
    probs = np.where(hits[:, None, None], truth, 1 - truth).astype(np.float16)
    write_npz(folder / "results/packed/train.npz", ids=ids, images=np.zeros_like(truth, dtype=np.uint8), masks=truth)
    write_npz(folder / "results/predict/fold0/oof.npz", ids=ids, probs=probs)
    score = float(hits.mean())
    write_json(folder / "results/cv_score.json", {"oof_map_iou": score, "per_fold": {"0": score}, "n_images": n,
                                                  "postprocessed": {"oof_map_iou": score, "per_fold": {"0": score}}})
    write_json(folder / "sweep_run.json", {"wall_s": seconds, "command": "snakemake ..."})
    return {"config": {"aux_weight": 0.3}}


def test_gains_are_paired_per_seed_with_their_spread(tmp_path):
    truth = np.zeros((40, 4, 4), dtype=np.uint8)
    truth[:, :2] = 1
    runs = []
    # the baseline gets 20 of 40 images right at both seeds; the variant 24 and 22 (+0.10, +0.05)
    for variant, seed, right in [("base", 1, 20), ("base", 2, 20), ("v", 1, 24), ("v", 2, 22)]:
        folder = tmp_path / variant / f"seed{seed}"
        fake_run(folder, truth, np.arange(40) < right, 60.0 * right)
        cfg = {"aux_weight": 0.3 if variant == "base" else 0.1, "seed": seed, "data_dir": "x"}
        (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
        runs.append({"variant": variant, "seed": seed, "folder": str(folder)})
    table = collect_runs(runs, "base")
    assert table.variant.tolist() == ["v", "v", "base", "base"]  # best first
    assert set(table.changed) == {"aux_weight=0.1", ""}  # seed and data_dir are not a variant's change
    gains = variant_gains(table, runs, "base").iloc[0]
    assert gains.pairs == 2 and gains.delta_raw == pytest.approx(0.075)
    assert gains.sd_raw == pytest.approx(np.std([0.10, 0.05], ddof=1))
    # per image: 6 of 80 pairs differ by +1
    assert gains.image_se_raw == pytest.approx(np.std([1] * 6 + [0] * 74, ddof=1) / np.sqrt(80))
    assert gains.verdict == "gain" and gains.delta_wall_min == pytest.approx(3.0)


def test_a_gain_inside_its_spread_is_noise(tmp_path):
    truth = np.ones((40, 4, 4), dtype=np.uint8)
    runs = []
    for variant, seed, right in [("base", 1, 20), ("base", 2, 24), ("v", 1, 23), ("v", 2, 22)]:
        folder = tmp_path / variant / f"seed{seed}"
        fake_run(folder, truth, np.arange(40) < right, 60.0)
        (folder / "config.yaml").write_text(yaml.safe_dump({"aux_weight": 0.3, "seed": seed}))
        runs.append({"variant": variant, "seed": seed, "folder": str(folder)})
    gains = variant_gains(collect_runs(runs, "base"), runs, "base").iloc[0]
    assert gains.delta_raw == pytest.approx(0.0125) and gains.verdict == "noise"


def test_folds_of_another_split_are_not_paired(tmp_path):
    truth = np.ones((40, 4, 4), dtype=np.uint8)
    runs = []
    for variant, first_id in [("base", 0), ("folds_3", 20)]:  # fold 0 holds other images in the variant
        folder = tmp_path / variant
        fake_run(folder, truth, np.arange(40) < 30, 60.0, first_id)
        (folder / "config.yaml").write_text(yaml.safe_dump({"aux_weight": 0.3}))
        runs.append({"variant": variant, "seed": None, "folder": str(folder)})
    gains = variant_gains(collect_runs(runs, "base"), runs, "base").iloc[0]
    assert (gains.pairs, gains.unpaired, gains.verdict) == (0, 1, "not paired")
    assert np.isnan(gains.delta_raw) and not np.isnan(gains.image_se_raw)  # the 20 images both scored


# --- a real sweep -------------------------------------------------------------------------------------

def run_sweep(workdir: Path, exp: Path, *args: str) -> subprocess.CompletedProcess:
    require_marker("snakemake")
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "workflow/sweep.smk"), "--directory", str(workdir), "--cores", "2",
           "--config", f"experiment={exp}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def demo_sweep(tmp_path_factory):
    """A real sweep of the tiny demo config: 2 variants x 2 seeds, fold 1 of 2 each, two runs at once (their
    jobs are single-threaded start-ups: side by side they halve the suite's time here; the wall times they
    distort are not asserted); (workdir, experiment file, the sweep's completed process)."""
    tmp_path = tmp_path_factory.mktemp("sweep")
    base = tmp_path / "tiny.yaml"
    base.write_text(yaml.safe_dump({**TINY_CONFIG, "checkpoint_minutes": 5}))
    exp = experiment(tmp_path, "tiny_sweep", base=str(base), data_dir="demo", seeds=[1, 2],
                     proxy={"folds": {"run": [1]}, "fold_threads": 1}, vary={"train.lr": [3e-3]})
    return tmp_path, exp, run_sweep(tmp_path, exp, "parallel_runs=2")


@pytest.mark.snakemake
def test_a_sweep_runs_each_variant_and_seed_once(demo_sweep):
    tmp_path, exp, first = demo_sweep
    base = tmp_path / "tiny.yaml"
    assert first.returncode == 0, first.stderr[-3000:]
    # each run's progress reaches the terminal, a line per epoch, named by its run
    assert "[train.lr-0.003/seed2] " in first.stdout and "fold 1 finetune 64 px, epoch 1/1" in first.stdout
    folder = tmp_path / "runs/tiny_sweep"
    table = pd.read_csv(folder / "leaderboard.csv")
    assert sorted(zip(table.variant, table.seed)) == [("base", 1), ("base", 2), ("train.lr-0.003", 1),
                                                       ("train.lr-0.003", 2)]
    assert set(table.changed.fillna("")) == {"", "train.lr=0.003"} and (table.folds == 1).all()
    assert (table.n_images == 12).all() and table.wall_min.gt(0).all() and table.cpu.notna().all()
    gains = pd.read_csv(folder / "gains.csv")
    assert gains.variant.tolist() == ["train.lr-0.003"] and gains.pairs.tolist() == [2]
    page = (folder / "leaderboard.html").read_text()
    assert "Gain over base" in page and "train.lr=0.003" in page and "data:image/png;base64," in page
    run = folder / "base/seed1"
    assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == 1
    assert (run / "results/analysis/postprocess.json").is_file() and (run / "results/analysis/losses.json").is_file()
    # each run is an ordinary run folder: only fold 1 was trained
    assert sorted(p.name for p in (run / "results/finetune").iterdir()) == ["fold1"]

    models = sorted(folder.glob("*/seed*/results/finetune/fold1/model.pth"))
    stamps = [p.stat().st_mtime_ns for p in models]
    again = run_sweep(tmp_path, exp)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    assert [p.stat().st_mtime_ns for p in models] == stamps

    # a variant changed under the same name is refused before anything runs, its folder untouched
    changed = experiment(tmp_path, "tiny_sweep", base=str(base), data_dir="demo", seeds=[1, 2],
                         proxy={"folds": {"run": [1]}, "fold_threads": 1, "train": {"epochs": 2}},
                         vary={"train.lr": [3e-3]})
    refused = run_sweep(tmp_path, changed)
    assert refused.returncode == 1 and "holds another config than the experiment file now gives" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) <= 3
    assert [p.stat().st_mtime_ns for p in models] == stamps


@pytest.mark.snakemake
@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install chromium)")
def test_the_leaderboard_page_renders_in_chromium(demo_sweep):
    tmp_path, _, first = demo_sweep
    assert first.returncode == 0, first.stderr[-3000:]
    page = tmp_path / "runs/tiny_sweep/leaderboard.html"
    proc = chromium("--virtual-time-budget=10000", "--dump-dom", page.as_uri())
    text = " ".join(proc.stdout.split())
    for fragment in ("Leaderboard: tiny_sweep", "Variants, best first", "Gain over base", "train.lr=0.003",
                     "Points lost by image group", "Every run"):
        assert fragment in text, fragment
    shot = tmp_path / "leaderboard.png"
    chromium("--window-size=1400,1000", f"--screenshot={shot}", page.as_uri())
    assert shot.read_bytes().startswith(PNG)
