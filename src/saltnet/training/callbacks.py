"""fastai callbacks for the fold trainer; each does one thing, said in its first line."""

from __future__ import annotations

import logging
import math
import random
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from fastai.callback.core import Callback, CancelFitException
from fastai.callback.tracker import SaveModelCallback
from fastai.learner import Recorder

from saltnet.runtime.atomic import atomic_path

__all__ = ["Autocast", "ChannelsLast", "NonFiniteLossError", "StopOnNonFiniteLoss", "BestModel",
           "EpochHistory", "epoch_line", "Snapshots", "Checkpoint", "TimeLimit", "rng_state", "set_rng_state"]

log = logging.getLogger(__name__)


class Autocast(Callback):
    """bf16 autocast around forward and loss on CPU or CUDA; predictions handed on as float32."""

    order = 10

    def __init__(self, device_type: str):
        self.device_type = device_type

    def before_batch(self):
        self.ctx = torch.autocast(self.device_type, dtype=torch.bfloat16)
        self.ctx.__enter__()

    def after_pred(self):
        self.learn.pred = self.pred.float()

    def after_loss(self):
        self.ctx.__exit__(None, None, None)

    def after_cancel_batch(self):
        self.ctx.__exit__(None, None, None)


class ChannelsLast(Callback):
    """Keep the model in channels_last memory format (inputs come channels_last from the loader)."""

    def before_fit(self):
        self.learn.model.to(memory_format=torch.channels_last)


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss."""


class StopOnNonFiniteLoss(Callback):
    """Stop the fold on a NaN/inf loss, naming fold, epoch and batch, before the step applies it."""

    order = 5

    def __init__(self, fold: int):
        self.fold = fold

    def after_loss(self):
        loss = float(self.loss.detach())
        if not math.isfinite(loss):
            raise NonFiniteLossError(
                f"fold {self.fold}: loss became {loss} at epoch {self.epoch}, batch {self.iter} "
                f"({'train' if self.training else 'valid'}); the best model saved so far is kept"
            )


def _epoch_ran(cb: Callback) -> bool:
    """False in after_epoch of an epoch that fit(start_epoch=k) skips on resume: fastai cancels it in
    before_epoch but still calls after_epoch, with nothing recorded (Recorder runs first)."""
    return bool(cb.recorder.values) and len(cb.recorder.values[-1]) > 0


class BestModel(SaveModelCallback):
    """SaveModelCallback that writes atomically, loads safely and can start from a known best."""

    def __init__(self, monitor: str, path: Path, best: float | None = None, best_epoch: int | None = None):
        super().__init__(monitor=monitor, comp=np.greater, fname=path.stem, reset_on_fit=best is None)
        self.path, self.best, self.best_epoch = Path(path), best, best_epoch

    def _save(self, name):
        with atomic_path(self.path) as tmp:
            torch.save(self.learn.model.state_dict(), tmp)
        self.best_epoch = self.epoch

    def after_epoch(self):
        if _epoch_ran(self):
            super().after_epoch()

    def after_fit(self, **kwargs):
        if self.path.exists():  # load the best epoch back (weights_only: no pickled code)
            self.learn.model.load_state_dict(torch.load(self.path, map_location="cpu", weights_only=True))


class EpochHistory(Callback):
    """Collect one row per epoch (losses, metric, lr, seconds) and log it as one line that names the fold,
    stage and size, `epoch k/N` (1-based), and estimates the time left in the stage.

    rows: the rows of a resumed run; fold, stage ('train' or 'finetune') and size only label the log.
    With deep supervision the row also has `train_main_loss`: the epoch's mean loss of the main output
    alone (`train_loss` is what was optimised, auxiliary terms included; `valid_loss` has none).
    """

    order = Recorder.order + 1

    def __init__(self, rows: list[dict] | None = None, fold: int | None = None, stage: str = "",
                 size: int | None = None):
        self.rows = list(rows or [])
        parts = [f"fold {fold}" if fold is not None else "", stage, f"{size} px" if size else ""]
        self.label = " ".join(p for p in parts if p)

    def before_epoch(self):
        self.start, self.main_losses = time.time(), []

    def after_batch(self):
        main = getattr(self.learn.loss_func, "main_loss", None)
        if self.training and main is not None:
            self.main_losses.append(main)

    def after_epoch(self):
        if not _epoch_ran(self):
            return
        names = self.recorder.metric_names[1:-1]  # drop 'epoch' and 'time'
        row = {"epoch": self.epoch, **{n: float(v) for n, v in zip(names, self.recorder.log[1:-1])}}
        if self.main_losses:
            row["train_main_loss"] = float(torch.stack(self.main_losses).float().mean())
        row.update(lr=float(self.opt.hypers[-1]["lr"]), seconds=time.time() - self.start)
        self.rows.append(row)
        log.info("%s", epoch_line(self.label, row, self.n_epoch, self.rows))


def _duration(seconds: float) -> str:
    """'45 s', '12 min 5 s', '2 h 3 min'."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def epoch_line(label: str, row: dict, n_epochs: int, rows: list[dict]) -> str:
    """One log line for a finished epoch (row: epoch 0-based, losses, metric, lr, seconds); the time left
    is the mean of the last 3 epochs' seconds (the first epoch carries warm-up) times the epochs to go."""
    done = row["epoch"] + 1
    values = " ".join(f"{k}={v:.4g}" for k, v in row.items() if k not in ("epoch", "seconds"))
    recent = [r["seconds"] for r in rows[-3:]]
    left = sum(recent) / len(recent) * (n_epochs - done)
    eta = f"~{_duration(left)} left" if done < n_epochs else "stage done"
    return f"{label + ', ' if label else ''}epoch {done}/{n_epochs}: {values} | {row['seconds']:.1f} s, {eta}"


def rng_state() -> dict:
    """Python, NumPy and torch RNG states in a form torch.load(weights_only=True) accepts."""
    np_state = np.random.get_state()
    return {"python": random.getstate(), "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
            "torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    torch.set_rng_state(state["torch"])


def _plain(hypers) -> dict:
    """Hyper-parameters with NumPy scalars as Python numbers: the one-cycle schedule can leave a
    numpy.float64 lr, which torch.load(weights_only=True) refuses, so the checkpoint would not load."""
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in dict(hypers).items()}


class Snapshots(Callback):
    """After each of the last `keep` epochs, the model's weights to folder/epoch{e}.pth (e from 1): the
    snapshots a weight average (SWA) or a snapshot ensemble can be built from after the run
    (rule analysis_snapshots (results/analysis/snapshots.json) measures both on the out-of-fold images)."""

    order = BestModel.order + 1

    def __init__(self, folder: Path, keep: int, rolling: bool = False):
        self.folder, self.keep, self.rolling = Path(folder), keep, rolling

    def after_epoch(self):
        """rolling: every epoch is written and the one `keep` before it removed, so the last `keep` epochs are
        on disk wherever the fit ends (a TimeLimit may end it early)."""
        if not _epoch_ran(self) or (self.epoch < self.n_epoch - self.keep and not self.rolling):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.folder / f"epoch{self.epoch + 1}.pth") as tmp:
            torch.save(self.learn.model.state_dict(), tmp)
        if self.rolling:
            (self.folder / f"epoch{self.epoch + 1 - self.keep}.pth").unlink(missing_ok=True)


class Checkpoint(Callback):
    """After an epoch, write a resumable checkpoint (model, optimiser, epoch, best, history, RNG) when
    `every_s` seconds have passed since the fit started or the last write, and always after the last epoch.

    every_s bounds the cost on a GPU, where the checkpoint of a large model (over 1 GB with Adam's state)
    can take as long as an epoch; 0 writes after every epoch.
    """

    order = BestModel.order + 1

    def __init__(self, path: Path, fingerprint: str, best_cb: BestModel, history: EpochHistory, every_s: float = 0):
        self.path, self.fingerprint, self.best_cb, self.history = Path(path), fingerprint, best_cb, history
        self.every_s = every_s

    def before_fit(self):
        self.last_write = time.monotonic()

    def after_epoch(self):
        if not _epoch_ran(self):
            return
        last_epoch = self.epoch + 1 == self.n_epoch
        if not last_epoch and time.monotonic() - self.last_write < self.every_s:
            return
        state = {
            "fingerprint": self.fingerprint,
            "epochs_done": self.epoch + 1,
            "model": self.learn.model.state_dict(),
            "opt": {"state": self.opt.state_dict()["state"], "hypers": [_plain(h) for h in self.opt.hypers]},
            "best": float(self.best_cb.best), "best_epoch": self.best_cb.best_epoch,
            "history": self.history.rows,
            "rng": rng_state(),
            "dl_rng": self.dls.train.rng.getstate(),
        }
        with atomic_path(self.path) as tmp:
            torch.save(state, tmp)
        self.last_write = time.monotonic()
        log.debug("checkpoint after epoch %d written to %s", self.epoch + 1, self.path)


class TimeLimit(Callback):
    """End the fit after the epoch from which one more would pass `seconds` of training (the epochs of a
    resumed run counted from the history): the time budget's guard, so that a stage the plan over-estimated
    cannot carry the run past budget_minutes. The next epoch is predicted as the mean of the last 3 (the
    first carries warm-up). With a `deadline` (a time.time() clock), also after the epoch from which one
    more would end past it: the last stage's guard on the budget's clock, which holds a fold that started
    late (rule replan). The one-cycle schedule is then cut short, so the plan, not this, should decide
    the epochs: `stopped_early` says when it did."""

    order = max(EpochHistory.order, Checkpoint.order) + 1  # after the epoch's row, snapshot, checkpoint

    def __init__(self, seconds: float, history: EpochHistory, deadline: float | None = None):
        self.seconds, self.history, self.deadline, self.stopped_early = seconds, history, deadline, False

    def after_epoch(self):
        if not _epoch_ran(self) or self.epoch + 1 >= self.n_epoch:
            return
        times = [row["seconds"] for row in self.history.rows]
        done, next_epoch = sum(times), statistics.mean(times[-3:])
        late = None if self.deadline is None else time.time() + next_epoch - self.deadline
        if done + next_epoch > self.seconds:
            reason = f" in {done:.0f} s of the {self.seconds:.0f} s this stage may take"
        elif late is not None and late > 0:
            reason = f"; one more would end {late:.0f} s past the budget's deadline"
        else:
            return
        log.warning("time limit: %d of %d epochs done%s: stopping", self.epoch + 1, self.n_epoch, reason)
        self.stopped_early = True
        raise CancelFitException()
