"""Training: the loss falls, runs resume exactly, Ctrl-C keeps the work, config is saved."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hybridnet import HybridNetConfig, load_model
from hybridnet.enhancer import BUNDLED_WEIGHTS
from hybridnet.train import CHECKPOINT, TrainConfig, Trainer, trained_gamma_reference
from hybridnet.weights_io import read_metadata
from lowlight.cli import main

TINY = HybridNetConfig.tiny()


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few smooth, textured 'photos' generated in the test."""
    root = tmp_path_factory.mktemp("clean")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:160, 0:200] / 160.0
    for i in range(4):
        base = np.stack(
            [np.sin(xx * (i + 2)) * 0.3 + 0.5, yy * 0.8 + 0.1, np.cos(yy * 3 + i) * 0.3 + 0.5],
            axis=-1,
        )
        base += rng.normal(0, 0.02, base.shape)
        Image.fromarray((np.clip(base, 0, 1) * 255).astype(np.uint8)).save(root / f"im{i}.png")
    return root


def _config(clean_dir: Path, **kw: object) -> TrainConfig:
    base = dict(
        model=TINY,
        iterations=6,
        batch_size=2,
        patch_size=128,
        lr=1e-3,
        train_dirs=(str(clean_dir),),
        checkpoint_every=2,
        log_every=1,
        seed=7,
    )
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_model(path).state_dict()


class TestTrainConfig:
    def test_paper_defaults(self) -> None:
        cfg = TrainConfig()
        assert (cfg.iterations, cfg.batch_size, cfg.patch_size) == (20_000, 10, 128)
        assert (cfg.lr, cfg.lr_step, cfg.lr_decay) == (1e-4, 8_000, 0.5)
        assert cfg.betas == (0.9, 0.999) and cfg.weight_decay == 1e-5
        assert cfg.loss == "total" and cfg.gamma_range == (2.0, 4.0)

    def test_json_round_trip(self, clean_dir: Path) -> None:
        cfg = _config(clean_dir, loss="mse+adv", ev_jitter=0.5, optimizer="adam")
        assert TrainConfig.from_json(cfg.to_json()) == cfg
        legacy = replace(TINY, exposure=False, residual=False)
        cfg = _config(clean_dir, model=legacy, degradation="mix")
        assert TrainConfig.from_json(cfg.to_json()) == cfg

    def test_degradation_must_suit_the_model(self, clean_dir: Path) -> None:
        with pytest.raises(ValueError, match="trained with degradation 'blind'"):
            _config(clean_dir, degradation="gamma")
        with pytest.raises(ValueError, match="blind"):
            _config(clean_dir, model=replace(TINY, exposure=False), degradation="blind")

    def test_ssim_weight(self, clean_dir: Path) -> None:
        assert TrainConfig().ssim_weight == 0.0  # the paper's loss unless asked
        cfg = _config(clean_dir, loss="mse", ssim_weight=0.25)
        assert TrainConfig.from_json(cfg.to_json()).ssim_weight == 0.25
        with pytest.raises(ValueError, match="ssim_weight"):
            TrainConfig(ssim_weight=-1.0)

    def test_gamma_reference(self, clean_dir: Path) -> None:
        assert TrainConfig().gamma_reference is None  # the paper: the network guesses
        cfg = _config(clean_dir, gamma_reference=3.0)
        assert TrainConfig.from_json(cfg.to_json()).gamma_reference == 3.0
        older = json.loads(_config(clean_dir).to_json())
        del older["gamma_reference"]  # a run saved before the option existed
        assert TrainConfig.from_json(json.dumps(older)).gamma_reference is None
        for bad in (0.0, -2.0, float("nan"), "3"):
            with pytest.raises(ValueError, match="gamma_reference"):
                TrainConfig(gamma_reference=bad)  # type: ignore[arg-type]

    def test_cli_help_defaults_are_the_dataclass_defaults(self) -> None:
        from lowlight.train_cmd import _CONFIG_OPTIONS

        cfg = TrainConfig()
        for option, kind, default in _CONFIG_OPTIONS:
            value = getattr(cfg, option[2:].replace("-", "_"))
            assert value == default and isinstance(value, kind), option

    def test_adversarial_needs_128_patches(self) -> None:
        with pytest.raises(ValueError, match="at least 128"):
            TrainConfig(patch_size=64, loss="total")
        TrainConfig(patch_size=64, loss="mse")  # fine without the discriminator


class TestTraining:
    def test_loss_falls(self, clean_dir: Path, tmp_path: Path) -> None:
        cfg = _config(
            clean_dir,
            iterations=40,
            loss="mse",
            patch_size=48,
            log_every=10,
            checkpoint_every=100,
            lr=3e-3,
        )
        trainer = Trainer(cfg, tmp_path / "run", progress=False)
        result = trainer.run()
        trainer.close()
        assert result.finished and result.model_path is not None
        rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[1:]
        losses = [float(r.split(",")[3]) for r in rows]
        assert losses[-1] < 0.5 * losses[0]
        meta_cfg = json.loads((tmp_path / "run" / "config.json").read_text())
        assert meta_cfg["iterations"] == 40
        assert load_model(result.model_path).config == TINY

    def test_interrupted_and_resumed_equals_uninterrupted(
        self, clean_dir: Path, tmp_path: Path
    ) -> None:
        cfg = _config(clean_dir, loss="mse+adv")
        straight = Trainer(cfg, tmp_path / "a", progress=False)
        straight.run()
        straight.close()

        def interrupt(iteration: int) -> None:
            if iteration == 3:
                raise KeyboardInterrupt

        first = Trainer(cfg, tmp_path / "b", progress=False)
        with pytest.raises(KeyboardInterrupt):
            first.run(on_step=interrupt)
        first.close()
        assert (tmp_path / "b" / CHECKPOINT).exists()
        assert not (tmp_path / "b" / "model.safetensors").exists()
        resumed = Trainer(cfg, tmp_path / "b", resume=True, progress=False)
        assert resumed.iteration == 3
        resumed.run()
        resumed.close()
        a = _weights(tmp_path / "a" / "model.safetensors")
        b = _weights(tmp_path / "b" / "model.safetensors")
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
        # and the discriminator/optimiser states match too
        ca = torch.load(tmp_path / "a" / CHECKPOINT, weights_only=True)
        cb = torch.load(tmp_path / "b" / CHECKPOINT, weights_only=True)
        assert all(torch.equal(ca["disc"][k], cb["disc"][k]) for k in ca["disc"])
        assert ca["iteration"] == cb["iteration"] == 6

    def test_stop_at_then_extend_iterations(self, clean_dir: Path, tmp_path: Path) -> None:
        cfg = _config(clean_dir, loss="mse", patch_size=32, iterations=4)
        t = Trainer(cfg, tmp_path / "r", progress=False)
        assert not t.run(stop_at=2).finished
        t.close()
        longer = _config(clean_dir, loss="mse", patch_size=32, iterations=5)
        t = Trainer(longer, tmp_path / "r", resume=True, progress=False)
        assert t.run().finished and t.iteration == 5
        t.close()

    def test_time_limit_leaves_a_usable_model_and_resumes_exactly(
        self, clean_dir: Path, tmp_path: Path
    ) -> None:
        cfg = _config(clean_dir, loss="mse", patch_size=32, iterations=4)
        straight = Trainer(cfg, tmp_path / "a", progress=False)
        straight.run()
        straight.close()
        t = Trainer(cfg, tmp_path / "b", progress=False)
        result = t.run(time_limit=1e-6)  # out of time after the first step
        t.close()
        assert result.iteration == 1 and not result.finished
        assert result.model_path == tmp_path / "b" / "model.safetensors"
        meta = read_metadata(result.model_path)
        assert (meta["iterations"], meta["planned_iterations"]) == ("1", "4")
        assert load_model(result.model_path).config == TINY
        t = Trainer(cfg, tmp_path / "b", resume=True, progress=False)
        assert t.iteration == 1 and t.run().finished
        t.close()
        a = _weights(tmp_path / "a" / "model.safetensors")
        b = _weights(tmp_path / "b" / "model.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a)
        with pytest.raises(ValueError, match="positive"):
            Trainer(cfg, tmp_path / "c", progress=False).run(time_limit=0)

    def test_cli_time_limit(self, clean_dir: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
        (tmp_path / "tiny.json").write_text(TINY.to_json(), encoding="utf-8")
        args = ["train", "--out", str(tmp_path / "r"), "--data", str(clean_dir),
                "--model-config", str(tmp_path / "tiny.json"), "--loss", "mse",
                "--patch-size", "32", "--batch-size", "2", "--iterations", "1000000",
                "--no-progress"]
        assert main([*args, "--time-limit", "1s"]) == 0
        out = capsys.readouterr().out.strip()
        assert out == str(tmp_path / "r" / "model.safetensors")
        done = int(read_metadata(out)["iterations"])
        assert 0 < done < 1_000_000
        for bad, why in (("soon", "not a duration"), ("-5", "not a duration"),
                         ("", "not a duration"), ("0m", "above zero")):
            with pytest.raises(SystemExit) as exc:
                main([*args, "--time-limit", bad])
            assert exc.value.code == 2
            assert why in capsys.readouterr().err

    def test_cli_ssim_weight_trains_and_logs_the_term(
        self, clean_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (tmp_path / "tiny.json").write_text(TINY.to_json(), encoding="utf-8")
        run = tmp_path / "r"
        assert main(["train", "--out", str(run), "--data", str(clean_dir),
                     "--model-config", str(tmp_path / "tiny.json"), "--loss", "mse",
                     "--ssim-weight", "0.5", "--patch-size", "32", "--batch-size", "2",
                     "--iterations", "3", "--log-every", "1", "--no-progress"]) == 0
        capsys.readouterr()
        assert json.loads((run / "config.json").read_text())["ssim_weight"] == 0.5
        rows = (run / "metrics.csv").read_text().splitlines()
        header = rows[0].split(",")
        values = [dict(zip(header, r.split(","), strict=True)) for r in rows[1:]]
        assert len(values) == 3
        for v in values:
            dssim = float(v["ssim_loss"])
            assert 0.0 < dssim < 1.0
            assert float(v["total"]) == pytest.approx(float(v["mse"]) + 0.5 * dssim, rel=1e-5)

    def test_cli_gamma_reference_is_stored_and_kept_on_resume(
        self, clean_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (tmp_path / "tiny.json").write_text(TINY.to_json(), encoding="utf-8")
        run = tmp_path / "r"
        common = ["--no-progress", "--patch-size", "32", "--batch-size", "2", "--log-every", "1"]
        assert main(["train", "--out", str(run), "--data", str(clean_dir), "--loss", "mse",
                     "--model-config", str(tmp_path / "tiny.json"), "--gamma-reference", "3",
                     "--iterations", "2", *common]) == 0
        assert json.loads((run / "config.json").read_text())["gamma_reference"] == 3.0
        assert main(["train", "--out", str(run), "--resume", "--iterations", "3"]) == 0
        assert json.loads((run / "config.json").read_text())["gamma_reference"] == 3.0
        capsys.readouterr()

    def test_resume_with_other_options_refused(self, clean_dir: Path, tmp_path: Path) -> None:
        cfg = _config(clean_dir, loss="mse", patch_size=32, iterations=2)
        t = Trainer(cfg, tmp_path / "r", progress=False)
        t.run()
        t.close()
        with pytest.raises(ValueError, match=r"other options \(lr differ\)"):
            Trainer(
                _config(clean_dir, loss="mse", patch_size=32, iterations=2, lr=0.5),
                tmp_path / "r",
                resume=True,
            )

    def test_cli_resume_keeps_the_stored_options(
        self, clean_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`--resume` alone (or with --iterations) continues a run started with options
        that are not the defaults, exactly; giving another value for one is refused."""
        (tmp_path / "tiny.json").write_text(TINY.to_json(), encoding="utf-8")
        options = ["--data", str(clean_dir), "--model-config", str(tmp_path / "tiny.json"),
                   "--loss", "mse", "--ssim-weight", "0.5", "--patch-size", "32",
                   "--batch-size", "2", "--lr", "3e-3", "--lr-step", "2", "--seed", "5",
                   "--checkpoint-every", "2", "--no-progress"]
        whole, part = tmp_path / "whole", tmp_path / "part"
        assert main(["train", "--out", str(whole), "--iterations", "4", *options]) == 0
        assert main(["train", "--out", str(part), "--iterations", "2", *options]) == 0
        assert main(["train", "--out", str(part), "--resume", "--iterations", "4",
                     "--no-progress"]) == 0
        capsys.readouterr()
        a = _weights(whole / "model.safetensors")
        b = _weights(part / "model.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a)
        stored = json.loads((part / "config.json").read_text())
        assert (stored["iterations"], stored["lr"], stored["ssim_weight"]) == (4, 3e-3, 0.5)
        # a different lr is named and refused
        assert main(["train", "--out", str(part), "--resume", "--lr", "1e-4",
                     "--no-progress"]) == 2
        assert "lr differ" in capsys.readouterr().err

    def test_existing_run_not_overwritten(self, clean_dir: Path, tmp_path: Path) -> None:
        cfg = _config(clean_dir, loss="mse", patch_size=32, iterations=2)
        t = Trainer(cfg, tmp_path / "r", progress=False)
        t.run()
        t.close()
        with pytest.raises(FileExistsError, match="--resume"):
            Trainer(cfg, tmp_path / "r")

    def test_init_weights_fine_tunes(self, clean_dir: Path, tmp_path: Path) -> None:
        first = Trainer(_config(clean_dir, loss="mse", patch_size=32, iterations=2),
                        tmp_path / "a", progress=False)
        first.run()
        first.close()
        start = tmp_path / "a" / "model.safetensors"
        cfg = _config(clean_dir, loss="mse", patch_size=32, iterations=1, init_weights=str(start))
        second = Trainer(cfg, tmp_path / "b", progress=False)
        before = {k: v.clone() for k, v in second.model.state_dict().items()}
        assert all(torch.equal(before[k], v) for k, v in _weights(start).items())
        second.run()
        second.close()

    def test_init_weights_warns_when_gamma_reference_differs(
        self, clean_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        told = Trainer(_config(clean_dir, loss="mse", patch_size=32, iterations=1,
                               gamma_reference=3.0), tmp_path / "a", progress=False)
        told.run()
        told.close()
        start = tmp_path / "a" / "model.safetensors"
        assert trained_gamma_reference(start) == 3.0
        with caplog.at_level("WARNING", logger="hybridnet.train"):
            Trainer(_config(clean_dir, loss="mse", patch_size=32, iterations=1,
                            init_weights=str(start)), tmp_path / "b", progress=False).close()
        assert "--gamma-reference 3" in caplog.text
        caplog.clear()
        with caplog.at_level("WARNING", logger="hybridnet.train"):
            Trainer(_config(clean_dir, loss="mse", patch_size=32, iterations=1,
                            init_weights=str(start), gamma_reference=3.0),
                    tmp_path / "c", progress=False).close()
        assert "gamma_reference" not in caplog.text
        caplog.clear()
        plain = tmp_path / "e" / "model.safetensors"
        untold = Trainer(_config(clean_dir, loss="mse", patch_size=32, iterations=1),
                         tmp_path / "e", progress=False)
        untold.run()
        untold.close()
        assert trained_gamma_reference(plain) is None
        with caplog.at_level("WARNING", logger="hybridnet.train"):
            Trainer(_config(clean_dir, loss="mse", patch_size=32, iterations=1,
                            init_weights=str(plain), gamma_reference=3.0),
                    tmp_path / "d", progress=False).close()
        assert "leave --gamma-reference out" in caplog.text
        # the bundled (blind) model was not told a gamma, and its header says so
        assert trained_gamma_reference(BUNDLED_WEIGHTS) is None

    def test_paired_folders(self, clean_dir: Path, tmp_path: Path) -> None:
        low = tmp_path / "low"
        low.mkdir()
        for f in clean_dir.iterdir():
            arr = np.asarray(Image.open(f)).astype(np.float32) / 255
            Image.fromarray((arr**3 * 255).astype(np.uint8)).save(low / f.name)
        cfg = _config(
            clean_dir,
            loss="mse",
            patch_size=32,
            iterations=2,
            train_dirs=(),
            pairs=(str(low), str(clean_dir)),
        )
        t = Trainer(cfg, tmp_path / "r", progress=False)
        assert t.run().finished
        t.close()
