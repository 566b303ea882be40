"""saltnet.performance.bench: rows for both modes and precisions, the machine named, smp as the 1.0x reference."""

import json
import sys
import time

import pytest
import torch

from saltnet.performance import bench

TINY = ["--sizes", "32", "--batch-size", "2", "--max-seconds", "0", "--min-steps", "1", "--min-seconds", "0"]
MACHINE = ["device", "cpu_model", "cpu_capability", "native_bf16", "threads", "load_avg_1m"]


@pytest.fixture
def one_thread():
    """The tiny run checks the rows, not the speed: on 2 busy cores, 2 threads ran it 3x slower than 1."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_tiny_run_writes_every_row_and_the_ratio_to_smp(tmp_path, capsys, monkeypatch, one_thread):
    pytest.importorskip("segmentation_models_pytorch")
    monkeypatch.setattr(bench, "WARMUP_STEPS", 0)  # one step a row: even at 32 px a train step takes ~1 s here
    out = tmp_path / "bench" / "bench.json"
    bench.main([*TINY, "--models", "unet_resnet34", bench.SMP_NAME, "--out", str(out)])
    rows = json.loads(out.read_text())
    keys = {(r["model"], r["mode"], r["precision"], r["size"]) for r in rows}
    assert keys == {(m, mode, p, 32) for m in ("unet_resnet34", bench.SMP_NAME)
                    for mode in ("train", "infer") for p in ("fp32", "bf16")}
    for row in rows:
        assert row["img_per_s"] > 0 and row["steps"] >= 1 and row["batch_size"] == 2
        assert row["aux_resolution"] == "output"  # the preset's, as the row was timed
        assert all(row[key] is not None for key in MACHINE)
        if row["model"] == bench.SMP_NAME:
            assert row["ratio_to_smp"] == 1.0
        else:
            assert row["ratio_to_smp"] > 0
    table = capsys.readouterr().out
    assert table.startswith("machine: cpu") or table.startswith("machine: NVIDIA")
    assert table.count(f"| {bench.SMP_NAME} |") == 4


def test_without_smp_the_bench_notes_it_and_goes_on(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "segmentation_models_pytorch", None)  # import now raises ImportError
    assert bench.main([*TINY, "--models", bench.SMP_NAME]) == []
    assert "segmentation_models_pytorch is not installed" in capsys.readouterr().err


def test_sizes_and_aux_weight_come_from_the_resolved_preset(tmp_path, monkeypatch):
    config = tmp_path / "mine.yaml"
    config.write_text("model: resunet_scse_ds\nfolds: {n: 2}\naux_weight: 0.7\n"
                      "train: {size: 48, epochs: 1, batch_size: 2, lr: 1.0e-3, wd: 0}\n"
                      "finetune: {size: 64, epochs: 1, batch_size: 2, lr: 1.0e-3, wd: 0}\n")
    seen = {}
    monkeypatch.setattr(bench, "run", lambda args, sizes, *rest: seen.update(
        sizes=sizes, aux=(args.aux_weight, args.aux_resolution)) or [])
    bench.main(["--preset", str(config), "--models", "resunet_scse_ds"])
    assert seen == {"sizes": [48, 64], "aux": (0.7, "output")}
    bench.main(["--preset", str(config), "--models", "resunet_scse_ds", "--config", "aux_resolution=level",
                "train={size: 32}"])  # as snakemake --config overrides a preset
    assert seen == {"sizes": [32, 64], "aux": (0.7, "level")}


def test_a_wrong_config_override_is_the_parsers_error(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--models", "resunet_scse_ds", "--config", "aux_resolution=native"])
    assert "config key aux_resolution: 'native' is not one of" in capsys.readouterr().err


def test_a_slow_step_is_timed_once_and_the_row_stops_at_max_seconds():
    steps, seconds = bench.time_steps(lambda: time.sleep(0.05), lambda: None, min_steps=10, min_seconds=0,
                                      max_seconds=0.01)
    assert steps == 1 and seconds >= 0.05
    steps, _ = bench.time_steps(lambda: None, lambda: None, min_steps=5, min_seconds=0, max_seconds=60)
    assert steps == 5


def test_ratio_is_relative_to_smp_at_the_same_mode_precision_and_size():
    def row(model, img_per_s, size=64):
        return dict(model=model, mode="train", precision="fp32", size=size, img_per_s=img_per_s)
    rows = bench.add_ratios([row(bench.SMP_NAME, 10.0), row("unet_resnet34", 25.0), row("unet_resnet34", 5.0, 128)])
    assert [r["ratio_to_smp"] for r in rows] == [1.0, 2.5, None]


@pytest.mark.parametrize("argv, message", [
    (["--models", "unet_vgg"], "unet_resnet34"),  # the error lists the choices
    (["--sizes", "32", "--batch-size", "0"], "positive integer"),
    (["--preset", "no/such/config.yaml"], "no/such/config.yaml"),
])
def test_bad_arguments_exit_2_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
