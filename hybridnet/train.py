"""Training (Ren et al., TIP 2019, Sec. III-D), reproducible and resumable.

Paper defaults (:class:`TrainConfig`): Adam with betas (0.9, 0.999), learning rate 1e-4
halved every 8,000 iterations, 20,000 iterations, batch 10 of 128x128 patches, weight
decay 1e-5, the total loss of Eq. (7). Two defaults are ours: the data are the
``blind`` darkenings (camera-like and gamma, behind the exposure curve of
:mod:`hybridnet.exposure`) and the weight decay is decoupled (AdamW), see
:class:`TrainConfig`. The loss ablation of Table II is the ``loss``
field (``mse``, ``mse+per``, ``mse+adv``, ``total``).

A run lives in one folder::

    RUN/config.json          the TrainConfig (everything that defines the run)
    RUN/train.log            the log
    RUN/metrics.csv          loss terms, learning rate and speed every ``log_every`` steps
    RUN/checkpoint.pt        model, discriminator, optimisers, schedulers, RNG states
    RUN/model.safetensors    the final generator (hybridnet.save_model) with provenance, or
                             the weights so far when a time limit ended the call

Checkpoints are written every ``checkpoint_every`` iterations and when the run is
interrupted (Ctrl-C); ``resume=True`` continues from the last one *exactly*: batch ``i``
is a pure function of ``(seed, i)`` (:mod:`hybridnet.data`) and every other piece of
state is restored, so an interrupted and resumed run ends with the same weights as an
uninterrupted one. Checkpoints use ``torch.save`` and are read back with
``weights_only=True`` (no arbitrary unpickling); shipped weights are safetensors.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from hybridnet.blind_pairs import BlindDarkenings, BlindPairSampler
from hybridnet.config import HybridNetConfig
from hybridnet.data import (
    TRAIN_SPLIT,
    BatchDataset,
    BlindPairs,
    PairedFolders,
    Source,
    SyntheticPairs,
    list_images,
    load_rgb8,
)
from hybridnet.degrade import RandomPairSampler
from hybridnet.discriminator import PATCH, Discriminator
from hybridnet.exposure import CurveParams
from hybridnet.hybrid_network import HybridNet
from hybridnet.losses import AdversarialMode, HybridLoss, LossTerms, discriminator_loss
from hybridnet.vgg import load_vgg_features
from hybridnet.weights_io import atomic_write, load_model, read_metadata, save_model
from lowlight.progress import ProgressBar, format_duration

Degradation = Literal["gamma", "realistic", "mix", "blind"]
Optimizer = Literal["adam", "adamw"]
DEGRADATIONS: tuple[str, ...] = ("gamma", "realistic", "mix", "blind")
log = logging.getLogger("hybridnet.train")

CHECKPOINT = "checkpoint.pt"
FINAL_MODEL = "model.safetensors"


def trained_gamma_reference(weights: str | os.PathLike[str]) -> float | None:
    """The ``gamma_reference`` a weights file was (last) trained with, from its header.

    Read from the ``gamma_reference`` key or, failing that, from the ``train_config``
    that ``lowlight train`` stores; None when the file says neither (trained on the
    darkened photo as it is, the paper's setting).
    """
    meta = read_metadata(weights)
    if "gamma_reference" in meta:
        return float(meta["gamma_reference"])
    try:
        value = json.loads(meta.get("train_config", "{}")).get("gamma_reference")
    except (ValueError, AttributeError):
        return None
    return None if value is None else float(value)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; saved as ``config.json`` and in checkpoints.

    Attributes:
        model: the network's hyperparameters.
        iterations: optimisation steps (paper: 20,000).
        batch_size: patches per step (paper: 10).
        patch_size: side of the square patches (paper: 128; the Table I discriminator
            needs at least 128).
        lr: initial learning rate (paper: 1e-4).
        lr_step: iterations between learning-rate decays (paper: 8,000).
        lr_decay: multiplicative decay (paper: 0.5).
        betas: Adam's beta1, beta2 (paper: defaults 0.9, 0.999).
        weight_decay: Adam's weight decay (paper: 1e-5).
        optimizer: ``adam`` (the paper's: weight decay as an L2 term in the gradient)
            or ``adamw`` (decoupled weight decay, Loshchilov & Hutter 2019). With Adam
            the L2 term of a weight that gets no other gradient is normalised to a full
            step towards zero, which drove 77 % of an earlier model's weights into the
            denormal range, where CPUs slow down; AdamW shrinks it by only
            ``lr * weight_decay`` per step.
        loss: the terms of Eq. (7) to use (Table II ablation).
        adversarial_mode: generator side of Eq. (6), see :mod:`hybridnet.losses`.
        ssim_weight: weight of the optional SSIM term added to Eq. (7) (0: the paper's
            loss exactly; see :func:`hybridnet.losses.ssim_loss`).
        degradation: synthetic pairs from clean photos: ``gamma`` (the paper's),
            ``realistic`` (camera-like), ``mix``, or ``blind``: camera-like and gamma
            darkenings with the network's input brought back by each darkening's exact
            curve (:mod:`hybridnet.blind_pairs`; needs ``model.exposure``); ignored with
            ``pairs``.
        mix_probability: share of realistic pairs in ``mix``.
        camera_probability: share of camera-like darkenings in ``blind``.
        ev_jitter: ``blind`` only: move each curve's exposure by up to this many stops
            and re-expose the target to match (the network learns to keep the exposure
            it is given).
        gamma_range: gamma of the paper's darkening, uniform (paper: (2, 4)); not used by
            ``blind``, whose ranges are :class:`hybridnet.blind_pairs.BlindDarkenings`'.
        noise_sigma_range: Gaussian noise sigma of the gamma mode, uniform (not ``blind``).
        gamma_reference: tell the network the darkening: gamma-mode inputs are normalised
            to this gamma (:func:`hybridnet.degrade.normalise_gamma`); None (the paper):
            the network guesses it.
        train_dirs: folders of clean photos.
        pairs: ``(low_dir, high_dir)`` of real pairs matched by file name, instead.
        seed: seeds the network's initialisation and every batch.
        checkpoint_every: iterations between checkpoints.
        log_every: iterations between log lines and metrics rows.
        vgg_weights: VGG-16 weights for the perceptual term (see :mod:`hybridnet.vgg`).
        init_weights: start the generator from these weights (fine-tuning; the file's
            config must equal ``model``) instead of a random initialisation.
    """

    model: HybridNetConfig = field(default_factory=HybridNetConfig)
    iterations: int = 20_000
    batch_size: int = 10
    patch_size: int = 128
    lr: float = 1e-4
    lr_step: int = 8_000
    lr_decay: float = 0.5
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-5
    optimizer: Optimizer = "adamw"
    loss: LossTerms = "total"
    adversarial_mode: AdversarialMode = "non_saturating"
    ssim_weight: float = 0.0
    degradation: Degradation = "blind"
    mix_probability: float = 0.5
    camera_probability: float = 0.6
    ev_jitter: float = 0.0
    gamma_range: tuple[float, float] = (2.0, 4.0)
    noise_sigma_range: tuple[float, float] = (0.0, 0.02)
    gamma_reference: float | None = None
    train_dirs: tuple[str, ...] = ()
    pairs: tuple[str, str] | None = None
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 50
    vgg_weights: str | None = None
    init_weights: str | None = None

    def __post_init__(self) -> None:
        for name in ("iterations", "batch_size", "patch_size", "lr_step", "checkpoint_every",
                     "log_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.loss not in ("mse", "mse+per", "mse+adv", "total"):
            raise ValueError(f"loss must be mse, mse+per, mse+adv or total; got {self.loss!r}")
        if self.degradation not in DEGRADATIONS:
            raise ValueError(
                f"degradation must be one of {', '.join(DEGRADATIONS)}; got {self.degradation!r}"
            )
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"optimizer must be adam or adamw, got {self.optimizer!r}")
        if self.degradation == "blind" and not self.model.exposure and self.pairs is None:
            raise ValueError(
                "degradation 'blind' trains the network behind the exposure curve; it needs "
                "a model config with exposure on (the default)"
            )
        if self.model.exposure and self.degradation != "blind" and self.pairs is None:
            raise ValueError(
                f"a model with the exposure estimator is trained with degradation 'blind', "
                f"not {self.degradation!r}; pass --degradation blind or a model config "
                'with "exposure": false'
            )
        if self.uses_adversarial and (self.patch_size < PATCH or self.patch_size % 32):
            raise ValueError(
                f"the adversarial loss needs patches of at least {PATCH} (multiple of 32) for "
                f"the Table I discriminator; got {self.patch_size}"
            )
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not self.ssim_weight >= 0:
            raise ValueError(f"ssim_weight must be >= 0, got {self.ssim_weight}")
        ref = self.gamma_reference
        if ref is not None and not (isinstance(ref, int | float) and 0 < ref < math.inf):
            raise ValueError(f"gamma_reference must be a positive number or None, got {ref!r}")

    @property
    def uses_adversarial(self) -> bool:
        return self.loss in ("mse+adv", "total")

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        raw: dict[str, Any] = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown training config keys {unknown}")
        raw["model"] = HybridNetConfig.from_json(json.dumps(raw.get("model", {})))
        for key in ("betas", "gamma_range", "noise_sigma_range", "train_dirs"):
            if key in raw:
                raw[key] = tuple(raw[key])
        if raw.get("pairs") is not None:
            raw["pairs"] = tuple(raw["pairs"])
        return cls(**raw)


def default_train_dirs(root: Path) -> tuple[str, ...]:
    """The training split of the shared data README under ``root``."""
    return tuple(str((root / sub).resolve()) for sub in TRAIN_SPLIT)


def pick_device(device: str = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else the CPU; anything else is passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class TrainResult:
    """What a call to :meth:`Trainer.run` did."""

    iteration: int
    finished: bool
    model_path: Path | None
    seconds: float


class Trainer:
    """Runs (or resumes) one training run in ``run_dir``.

    Args:
        config: the run's definition.
        run_dir: the run's folder (created).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        resume: continue from ``run_dir/checkpoint.pt``; the stored config must match
            (only ``iterations`` may grow).
        workers: data loader processes; default 0 on the CPU (the cores are busy
            training) and up to 8 with pinned memory on a GPU so it is never starved.
        progress: show a progress bar on standard error.
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dir: str | os.PathLike[str],
        *,
        device: str = "auto",
        resume: bool = False,
        workers: int | None = None,
        progress: bool = True,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.device = pick_device(device)
        self.progress = progress
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._log_handler = self._attach_log_file()
        checkpoint: dict[str, Any] | None = None
        if resume:
            checkpoint = self._load_checkpoint()
            stored = TrainConfig.from_json(checkpoint["train_config"])
            changed = [f.name for f in fields(TrainConfig) if f.name != "iterations"
                       and getattr(stored, f.name) != getattr(config, f.name)]
            if changed:
                raise ValueError(
                    f"--resume: the run in {self.run_dir} was started with other options "
                    f"({', '.join(changed)} differ); resume it as it was (only --iterations "
                    "may change) or start a new run folder"
                )
        elif (self.run_dir / CHECKPOINT).exists():
            raise FileExistsError(
                f"{self.run_dir} already holds a run; pass --resume to continue it or choose "
                "another output folder"
            )
        self.config = config
        (self.run_dir / "config.json").write_text(config.to_json() + "\n", encoding="utf-8")
        if workers is None:
            workers = min(8, max(0, (os.cpu_count() or 1) - 1)) if self.device.type == "cuda" else 0
        self.workers = workers

        torch.manual_seed(config.seed)
        self.model = HybridNet(config.model)
        if config.init_weights is not None and checkpoint is None:
            start = load_model(config.init_weights, expected_config=config.model)
            self.model.load_state_dict(start.state_dict())
            log.info("generator initialised from %s", config.init_weights)
            started = trained_gamma_reference(config.init_weights)
            if started != config.gamma_reference:
                trained, keep = (("without --gamma-reference", "leave --gamma-reference out")
                                 if started is None else
                                 (f"with --gamma-reference {started:g}",
                                  f"pass --gamma-reference {started:g}"))
                log.warning(
                    "%s was trained %s but this run uses %s: fine-tuning will retrain how "
                    "the network reads its input; %s to keep it",
                    config.init_weights, trained,
                    "none" if config.gamma_reference is None
                    else f"--gamma-reference {config.gamma_reference:g}", keep,
                )
        self.model = self.model.to(self.device).train()
        self.disc: Discriminator | None = None
        if config.uses_adversarial:
            self.disc = Discriminator(config.model.leaky_slope).to(self.device).train()
        vgg = None
        if config.loss in ("mse+per", "total"):
            vgg = load_vgg_features(config.vgg_weights, config.model.perceptual_layer)
            if vgg is not None:
                vgg = vgg.to(self.device)
        self.loss = HybridLoss(
            config.loss, vgg, adversarial_mode=config.adversarial_mode,
            lambda_s=config.ssim_weight,
        )
        self.opt_g = self._adam(self.model)
        self.sched_g = self._scheduler(self.opt_g)
        self.opt_d = self._adam(self.disc) if self.disc is not None else None
        self.sched_d = self._scheduler(self.opt_d) if self.opt_d is not None else None
        self.iteration = 0
        self.elapsed = 0.0
        self._segment_start = time.monotonic()
        if checkpoint is not None:
            self._restore(checkpoint)
            log.info("resumed %s at iteration %d", self.run_dir, self.iteration)
        self.source = self._make_source()

    # ------------------------------------------------------------------ public

    def run(
        self,
        stop_at: int | None = None,
        on_step: Callable[[int], None] | None = None,
        *,
        time_limit: float | None = None,
    ) -> TrainResult:
        """Train until ``config.iterations`` (or ``stop_at``, then checkpoint and return).

        Args:
            stop_at: stop at this iteration (checkpoint only; resume to go on).
            on_step: called with the iteration number after each step.
            time_limit: seconds this call may train. When they run out the run stops
                after the current step, saves its checkpoint *and* writes the weights so
                far to ``model.safetensors`` (its header says how many of the planned
                iterations were done), so a fixed time budget always ends with a usable
                model; ``--resume`` continues the schedule exactly.

        Ctrl-C saves a checkpoint before re-raising :class:`KeyboardInterrupt`.
        """
        cfg = self.config
        end = cfg.iterations if stop_at is None else min(stop_at, cfg.iterations)
        if time_limit is not None and not time_limit > 0:
            raise ValueError(f"time_limit must be a positive number of seconds, got {time_limit}")
        deadline = None if time_limit is None else time.monotonic() + time_limit
        out_of_time = False
        log.info(
            "training %s on %s: iterations %d..%d, loss %s, perceptual %s, data %s",
            self.run_dir, self.device, self.iteration, end, cfg.loss,
            "on" if self.loss.perceptual_active else "off",
            "pairs" if cfg.pairs else cfg.degradation,
        )
        loader = torch.utils.data.DataLoader(
            BatchDataset(self.source, self.iteration, end),
            batch_size=None,
            shuffle=False,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            prefetch_factor=4 if self.workers > 0 else None,
        )
        bar = ProgressBar(cfg.iterations, "train", enabled=self.progress, initial=self.iteration)
        self._segment_start = time.monotonic()
        window_start, window_iters = self._segment_start, 0
        try:
            for batch in loader:
                values = self._step(*(t.to(self.device, non_blocking=True) for t in batch))
                self.iteration += 1
                window_iters += 1
                bar.update(1, info=f"loss {values['total']:.4g}")
                if self.iteration % cfg.log_every == 0 or self.iteration == end:
                    now = time.monotonic()
                    speed = window_iters / max(now - window_start, 1e-9)
                    window_start, window_iters = now, 0
                    self._log_metrics(values, speed)
                if self.iteration % cfg.checkpoint_every == 0 and self.iteration < end:
                    self._save_checkpoint()
                if on_step is not None:
                    on_step(self.iteration)
                if deadline is not None and time.monotonic() >= deadline and self.iteration < end:
                    out_of_time = True
                    if window_iters:  # the last steps' numbers, not just the last full window
                        self._log_metrics(values, window_iters / max(
                            time.monotonic() - window_start, 1e-9))
                    break
        except KeyboardInterrupt:
            bar.close()
            path = self._save_checkpoint()
            log.warning(
                "interrupted at iteration %d; checkpoint saved to %s. Continue with --resume.",
                self.iteration, path,
            )
            raise
        bar.close()
        self._save_checkpoint()
        seconds = self.elapsed
        if self.iteration >= cfg.iterations:
            path = self._save_final()
            log.info("done: %d iterations in %s; model %s", self.iteration,
                     format_duration(seconds), path)
            return TrainResult(self.iteration, True, path, seconds)
        if out_of_time:
            path = self._save_final()
            log.warning(
                "time limit reached at iteration %d of %d; the weights so far are in %s. "
                "Continue the schedule with --resume.", self.iteration, cfg.iterations, path,
            )
            return TrainResult(self.iteration, False, path, seconds)
        return TrainResult(self.iteration, False, None, seconds)

    def close(self) -> None:
        """Detach the run's log file."""
        logging.getLogger("hybridnet").removeHandler(self._log_handler)
        self._log_handler.close()

    # ------------------------------------------------------------------ internals

    def _step(
        self, low: torch.Tensor, high: torch.Tensor, curve: torch.Tensor | None = None
    ) -> dict[str, float]:
        out = self.model(low, None if curve is None else CurveParams.unstack(curve))
        fake_logits = None
        d_loss = None
        if self.disc is not None and self.opt_d is not None:
            # D ascends Eq. (6): real ground truth vs. the generator's (detached) output.
            self.disc.requires_grad_(True)
            self.opt_d.zero_grad(set_to_none=True)
            d_loss = discriminator_loss(self.disc(high), self.disc(out.detach()))
            d_loss.backward()  # type: ignore[no-untyped-call]
            self.opt_d.step()
            self.disc.requires_grad_(False)  # G's step needs gradients through D, not for D
            fake_logits = self.disc(out)
        self.opt_g.zero_grad(set_to_none=True)
        values = self.loss(out, high, fake_logits)
        values.total.backward()
        self.opt_g.step()
        self.sched_g.step()
        if self.sched_d is not None:
            self.sched_d.step()
        result = {"total": float(values.total.detach()), "mse": values.mse}
        if values.perceptual is not None:
            result["perceptual"] = values.perceptual
        if values.adversarial is not None:
            result["adversarial"] = values.adversarial
        if values.ssim is not None:
            result["ssim_loss"] = values.ssim
        if d_loss is not None:
            result["discriminator"] = float(d_loss.detach())
        return result

    def _adam(self, module: nn.Module) -> torch.optim.Optimizer:
        """Adam or AdamW over the parameters that train (not the exposure estimator's,
        which :mod:`hybridnet.train_exposure` fits on its own)."""
        cfg = self.config
        params = [p for n, p in module.named_parameters() if not n.startswith("exposure.")]
        kind = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        return kind(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)

    def _scheduler(self, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.StepLR:
        return torch.optim.lr_scheduler.StepLR(
            opt, step_size=self.config.lr_step, gamma=self.config.lr_decay
        )

    def _make_source(self) -> Source:
        cfg = self.config
        if cfg.pairs is not None:
            low_dir, high_dir = (Path(p) for p in cfg.pairs)
            return PairedFolders.from_folders(
                low_dir, high_dir, cfg.patch_size, cfg.batch_size, cfg.seed
            )
        if not cfg.train_dirs:
            raise ValueError("no training data: give train_dirs (folders of clean photos) or pairs")
        files = list_images(cfg.train_dirs)
        images = [load_rgb8(f) for f in files]
        usable = [im for im in images if min(im.shape[:2]) >= cfg.patch_size]
        if len(usable) < len(images):
            log.warning("%d images smaller than %d px skipped", len(images) - len(usable),
                        cfg.patch_size)
        log.info("training on %d clean photos from %d folders", len(usable), len(cfg.train_dirs))
        if cfg.degradation == "blind":
            blind = BlindPairSampler(
                patch_size=cfg.patch_size,
                darkenings=BlindDarkenings(camera_probability=cfg.camera_probability),
                ev_jitter=cfg.ev_jitter,
            )
            return BlindPairs(usable, blind, cfg.batch_size, cfg.seed)
        sampler = RandomPairSampler(
            patch_size=cfg.patch_size,
            mode=cfg.degradation,
            mix_probability=cfg.mix_probability,
            gamma_range=cfg.gamma_range,
            noise_sigma_range=cfg.noise_sigma_range,
            gamma_reference=cfg.gamma_reference,
        )
        return SyntheticPairs(usable, sampler, cfg.batch_size, cfg.seed)

    def _attach_log_file(self) -> logging.Handler:
        handler = logging.FileHandler(self.run_dir / "train.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger("hybridnet")
        root.addHandler(handler)
        if root.level == logging.NOTSET or root.level > logging.INFO:
            root.setLevel(logging.INFO)
        return handler

    def _log_metrics(self, values: dict[str, float], speed: float) -> None:
        lr = self.opt_g.param_groups[0]["lr"]
        row = {"iteration": self.iteration, "lr": lr, "it_per_s": round(speed, 4), **values}
        path = self.run_dir / "metrics.csv"
        columns = ["iteration", "lr", "it_per_s", "total", "mse", "perceptual", "adversarial",
                   "discriminator", "ssim_loss"]
        new = not path.exists()
        with path.open("a", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            if new:
                writer.writeheader()
            writer.writerow({k: row.get(k, "") for k in columns})
        log.info("iter %d  %s  lr %.3g  %.3g it/s", self.iteration,
                 "  ".join(f"{k} {v:.5g}" for k, v in values.items()), lr, speed)

    def _checkpoint_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "iteration": self.iteration,
            "elapsed": self.elapsed,
            "train_config": self.config.to_json(),
            "model": self.model.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "sched_g": self.sched_g.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }
        if self.disc is not None and self.opt_d is not None and self.sched_d is not None:
            state["disc"] = self.disc.state_dict()
            state["opt_d"] = self.opt_d.state_dict()
            state["sched_d"] = self.sched_d.state_dict()
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def _save_checkpoint(self) -> Path:
        now = time.monotonic()
        self.elapsed += now - self._segment_start
        self._segment_start = now  # time is counted once, across checkpoints and resumes
        state = self._checkpoint_state()
        return atomic_write(self.run_dir / CHECKPOINT, lambda tmp: torch.save(state, tmp))

    def _load_checkpoint(self) -> dict[str, Any]:
        path = self.run_dir / CHECKPOINT
        if not path.exists():
            raise FileNotFoundError(f"--resume: no checkpoint in {self.run_dir}")
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.sched_g.load_state_dict(state["sched_g"])
        if self.disc is not None and self.opt_d is not None and self.sched_d is not None:
            self.disc.load_state_dict(state["disc"])
            self.opt_d.load_state_dict(state["opt_d"])
            self.sched_d.load_state_dict(state["sched_d"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.iteration = int(state["iteration"])
        self.elapsed = float(state["elapsed"])

    def _save_final(self) -> Path:
        cfg = self.config
        return save_model(
            self.model,
            self.run_dir / FINAL_MODEL,
            metadata={
                "train_config": cfg.to_json(),
                "iterations": str(self.iteration),
                "planned_iterations": str(cfg.iterations),
                "train_seconds": f"{self.elapsed:.0f}",
                "train_device": str(self.device),
                "perceptual_loss": "on" if self.loss.perceptual_active else "off",
            },
        )
