"""Config key snapshots: the last epochs' weights kept, averaged, BatchNorm measured again."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from conftest import STAGE
from saltnet.data.loaders import prepare_images
from saltnet.training.snapshots import average_weights, recompute_batchnorm, snapshot_files


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4))


def test_weights_are_averaged_and_the_batch_counter_comes_from_the_last():
    a, b = _net().state_dict(), _net().state_dict()
    a["1.num_batches_tracked"].fill_(3)
    b["1.num_batches_tracked"].fill_(7)
    mean = average_weights([a, b])
    assert torch.allclose(mean["0.weight"], (a["0.weight"] + b["0.weight"]) / 2)
    assert not torch.equal(mean["0.weight"], a["0.weight"]) and not torch.equal(mean["0.weight"], b["0.weight"])
    assert mean["1.num_batches_tracked"].item() == 7 and mean["1.num_batches_tracked"].dtype == torch.long
    net = _net()
    net.load_state_dict(mean)  # a loadable state dict of the same model


def test_state_dicts_of_other_models_are_not_averaged():
    other = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1)).state_dict()
    with pytest.raises(ValueError, match="other keys"):
        average_weights([other, _net().state_dict()])
    with pytest.raises(ValueError, match="no state dicts"):
        average_weights([])


def test_batchnorm_is_measured_again_as_an_exact_average_over_the_images():
    """A BatchNorm straight on the prepared images: its running mean must become the images' channel
    mean (equal batches: the mean of the batch means), not a momentum-weighted mix with the old value."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(32, 11, 11), dtype=np.uint8)
    net = nn.Sequential(nn.BatchNorm2d(3))
    net[0].running_mean.fill_(5.0)
    out = recompute_batchnorm(net, images, 11, batch_size=8)
    assert not out.training and net[0].momentum == 0.1  # eval mode, the momentum given back
    x = prepare_images(torch.from_numpy(images), 11)
    assert torch.allclose(net[0].running_mean, x.mean(dim=(0, 2, 3)), atol=1e-5)
    batch_vars = [x[i:i + 8].var(dim=(0, 2, 3), unbiased=True) for i in range(0, 32, 8)]
    assert torch.allclose(net[0].running_var, torch.stack(batch_vars).mean(0), atol=1e-4)
    with pytest.raises(ValueError, match="no images"):
        recompute_batchnorm(net, images[:0], 11)


def test_snapshots_are_listed_by_epoch_number(tmp_path):
    for name in ("epoch10.pth", "epoch9.pth", "epoch11.pth", "notes.txt", "epoch9.pth.tmp"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in snapshot_files(tmp_path)] == ["epoch9.pth", "epoch10.pth", "epoch11.pth"]
    with pytest.raises(FileNotFoundError, match="empty.*snapshots > 0"):
        snapshot_files(tmp_path / "empty")


def test_a_fold_keeps_its_last_epochs_and_a_clean_start_removes_old_ones(tmp_path):
    """A real (tiny) fastai fold with snapshots=2 of 3 epochs: epochs 2 and 3 kept, the last equal to
    the weights the fold returns when it is also the best; a rerun with other settings starts clean."""
    from saltnet.data.demo import make_demo_data
    from saltnet.data.folds import split_folds
    from saltnet.data.pack import pack_competition
    from saltnet.training.fold import SNAPSHOTS, TrainSettings, train_fold

    make_demo_data(tmp_path / "data", n_train=24, n_test=1, seed=3)
    data, _ = pack_competition(tmp_path / "data")
    folds = split_folds(data.ids, data.masks, 2, 0)
    settings = TrainSettings(**{**STAGE, "epochs": 3}, loss="bce_dice", snapshots=2)
    work = tmp_path / "work"
    result = train_fold(data, folds, 0, settings, work, torch.device("cpu"))
    kept = snapshot_files(work / SNAPSHOTS)
    assert [p.name for p in kept] == ["epoch2.pth", "epoch3.pth"]
    last = torch.load(kept[-1], weights_only=True)
    if result.best_epoch == 2:  # fastai counts from 0: the third epoch was the best
        assert all(torch.equal(last[k], result.state_dict[k]) for k in last)
    else:
        assert any(not torch.equal(last[k], result.state_dict[k]) for k in last if last[k].is_floating_point())
    (work / "checkpoint.pth").unlink(missing_ok=True)  # a finished fold: the next run starts clean
    train_fold(data, folds, 0, TrainSettings(**{**settings.__dict__, "epochs": 2, "snapshots": 1}), work,
               torch.device("cpu"))
    assert [p.name for p in snapshot_files(work / SNAPSHOTS)] == ["epoch2.pth"]


def test_swa_returns_the_last_epochs_mean_with_batchnorm_measured_again(tmp_path):
    """Config key swa=2 of 3 epochs: the fold's weights are the mean of epochs 2 and 3 (kept on disk even
    with snapshots 0), and BatchNorm's running statistics are measured again, not averaged."""
    from saltnet.data.demo import make_demo_data
    from saltnet.data.folds import split_folds
    from saltnet.data.pack import pack_competition
    from saltnet.training.fold import SNAPSHOTS, TrainSettings, train_fold

    make_demo_data(tmp_path / "data", n_train=24, n_test=1, seed=3)
    data, _ = pack_competition(tmp_path / "data")
    folds = split_folds(data.ids, data.masks, 2, 0)
    settings = TrainSettings(**{**STAGE, "epochs": 3}, loss="bce_dice", swa=2)
    result = train_fold(data, folds, 0, settings, tmp_path / "work", torch.device("cpu"))
    kept = [torch.load(p, weights_only=True) for p in snapshot_files(tmp_path / "work" / SNAPSHOTS)]
    assert len(kept) == 2
    mean = average_weights(kept)
    stats = [k for k in mean if k.endswith(("running_mean", "running_var"))]
    weights = [k for k in mean if k not in stats and mean[k].is_floating_point()]
    assert stats and weights
    assert all(torch.allclose(result.state_dict[k], mean[k]) for k in weights)
    assert any(not torch.allclose(result.state_dict[k], mean[k]) for k in stats)


def test_div_final_sets_where_the_one_cycle_schedule_ends(tmp_path):
    """Config key div_final: the one-cycle schedule ends at lr / div_final. With 4 steps an epoch, the last
    epoch's learning rate (the history's, at its last step) is just above lr / 4 with div_final 4, and
    an order of magnitude lower with the default (1e5): what swa averages then differs from epoch to epoch."""
    from saltnet.data.demo import make_demo_data
    from saltnet.data.folds import split_folds
    from saltnet.data.pack import pack_competition
    from saltnet.training.fold import TrainSettings, train_fold

    make_demo_data(tmp_path / "data", n_train=64, n_test=1, seed=3)
    data, _ = pack_competition(tmp_path / "data")
    folds = split_folds(data.ids, data.masks, 2, 0)
    last_lr = {}
    for div_final in (1e5, 4.0):
        settings = TrainSettings(**{**STAGE, "epochs": 3, "lr": 1e-2}, loss="bce_dice", div_final=div_final)
        result = train_fold(data, folds, 0, settings, tmp_path / f"work{div_final:g}", torch.device("cpu"))
        last_lr[div_final] = result.history["lr"].iloc[-1]
    assert 1e-2 / 4 <= last_lr[4.0] < 1e-2 / 3
    assert last_lr[1e5] < last_lr[4.0] / 5
