"""The exposure curve and estimator (hybridnet.exposure) and its training
(hybridnet.train_exposure)."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from hybridnet.blind_pairs import BlindDarkenings, Darkening
from hybridnet.degrade import draw_realistic
from hybridnet.exposure import (
    FEATURES,
    HIGHLIGHT_HEADROOM,
    SHOULDER_KNEE,
    CurveParams,
    ExposureEstimator,
    apply_curve,
    auto_black,
    exposure_features,
    lift_to_floor,
    linear_to_srgb,
    shoulder,
    srgb_to_linear,
    thumbnail,
)
from hybridnet.train_exposure import (
    EstimatorSamples,
    ThumbnailSet,
    area_thumbnail,
    curve_loss,
    estimate_curve,
    exposure_error,
    fit_into_network,
    train_estimator,
)


def _scene(seed: int, h: int = 96, w: int = 128) -> np.ndarray:
    """A smooth colourful 'photo' with shadows, mid-tones and highlights, sRGB in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    f = rng.uniform(2, 7, 3)
    base = np.stack([0.5 + 0.45 * np.sin(xx * f[0] + yy * f[1] + seed),
                     0.45 + 0.4 * np.cos(yy * f[2] - xx),
                     0.4 + 0.35 * np.sin((xx - yy) * f[1] + 1.0)], -1)
    level = rng.uniform(0.9, 1.1)  # photos of about one exposure: the target is known
    return np.clip(base * level + rng.normal(0, 0.01, base.shape), 0, 1)


def _curve(a: float = 1.0, black: float = 0.0, ev: float = 0.0) -> CurveParams:
    return CurveParams(torch.tensor([a]), torch.tensor([black]), torch.tensor([ev]))


def _t(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).permute(2, 0, 1)[None]


class TestTransfer:
    def test_round_trip(self) -> None:
        v = torch.linspace(0, 1, 1001, dtype=torch.float64)
        assert torch.allclose(linear_to_srgb(srgb_to_linear(v)), v, atol=1e-9)

    def test_finite_gradient_at_zero(self) -> None:
        x = torch.zeros(3, requires_grad=True)
        linear_to_srgb(x).sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()


class TestShoulder:
    def test_identity_below_the_knee_and_below_one_above(self) -> None:
        t = torch.linspace(0, SHOULDER_KNEE, 100)
        assert torch.equal(shoulder(t), t)
        big = torch.tensor([1.0, 1.5, 2.0, 10.0, 1e6], dtype=torch.float64)
        s = shoulder(big)
        assert (s[:3] < 1).all() and (s <= 1).all() and (s.diff() >= 0).all()
        assert float(shoulder(torch.tensor([1.0]))) == pytest.approx(0.9 + 0.1 * math.tanh(1))

    def test_continuous_slope_at_the_knee(self) -> None:
        t = torch.tensor([SHOULDER_KNEE - 1e-4, SHOULDER_KNEE + 1e-4], dtype=torch.float64)
        s = shoulder(t)
        assert float((s[1] - s[0]) / 2e-4) == pytest.approx(1.0, abs=1e-3)


class TestApplyCurve:
    def test_inverts_a_gamma_darkening(self) -> None:
        x = 0.05 + torch.rand(1, 3, 16, 16, dtype=torch.float64) * 0.85
        out = apply_curve(x**2.5, _curve(a=1 / 2.5))
        assert torch.allclose(out, x, atol=1e-6)

    def test_inverts_a_camera_underexposure(self) -> None:
        x = torch.rand(1, 3, 16, 16, dtype=torch.float64) * 0.9
        dark = linear_to_srgb(srgb_to_linear(x) / 8)
        assert torch.allclose(apply_curve(dark, _curve(ev=3.0)), x, atol=1e-6)

    def test_black_point_maps_to_zero(self) -> None:
        x = torch.full((1, 3, 2, 2), float(linear_to_srgb(torch.tensor(0.02))))
        assert float(apply_curve(x, _curve(black=0.02)).max()) == pytest.approx(0, abs=1e-6)

    def test_monotone_in_ev_and_in_the_input(self) -> None:
        x = torch.linspace(0, 1, 257).view(1, 1, 1, -1).expand(1, 3, 1, -1)
        outs = [apply_curve(x, _curve(ev=e)) for e in (-2, -1, 0, 1, 2, 4)]
        for lo, hi in itertools.pairwise(outs):
            assert (hi >= lo).all() and (hi > lo).any()
        assert (outs[3].diff(dim=-1) >= 0).all() and (outs[-1] < 1).all()

    def test_one_curve_per_image(self) -> None:
        x = torch.full((2, 3, 4, 4), 0.2)
        params = CurveParams(torch.ones(2), torch.zeros(2), torch.tensor([0.0, 1.0]))
        out = apply_curve(x, params)
        assert torch.allclose(out[0], x[0], atol=1e-6) and (out[1] > out[0]).all()
        with pytest.raises(ValueError, match="shape"):
            apply_curve(torch.zeros(3, 3, 4, 4), params)

    def test_params_stack_unstack_shift(self) -> None:
        p = CurveParams(torch.tensor([0.5]), torch.tensor([0.01]), torch.tensor([1.0]))
        assert CurveParams.unstack(p.stack()) == p
        assert float(p.shifted(-0.5).ev[0]) == 0.5
        with pytest.raises(ValueError, match="N×3"):
            CurveParams.unstack(torch.zeros(2, 4))


class TestFeatures:
    def test_shape_finite_and_size_independent(self) -> None:
        img = _t(_scene(0, 384, 512))
        small = thumbnail(img)
        assert max(small.shape[-2:]) <= 128
        f_big, f_small = exposure_features(img), exposure_features(img[..., ::2, ::2])
        assert f_big.shape == (1, FEATURES) and torch.isfinite(f_big).all()
        assert float((f_big - f_small).abs().max()) < 0.05

    def test_darker_photo_lower_log_average(self) -> None:
        img = _t(_scene(1))
        feats = [exposure_features(apply_curve(img, _curve(ev=e))) for e in (-3, -1, 0)]
        log_avg = [float(f[0, -2]) for f in feats]
        assert log_avg[0] < log_avg[1] < log_avg[2]


class TestExposureEstimator:
    def test_new_estimator_is_about_the_identity(self) -> None:
        est = ExposureEstimator(16)
        p = est.estimate(_t(_scene(2)), floor=0)  # the estimator alone
        assert float(p.a[0]) == pytest.approx(1.0, abs=1e-5)
        assert float(p.ev[0]) == pytest.approx(0.0, abs=1e-6)
        assert float(p.black[0]) < 1e-3

    def test_follows_the_module_dtype(self) -> None:
        est = ExposureEstimator(16).double()
        assert est.estimate(_t(_scene(2))).a.dtype == torch.float64


class TestLiftToFloor:
    def test_dark_photo_lifted_to_the_floor_bright_one_left(self) -> None:
        img = _t(_scene(3))
        dark = apply_curve(img, _curve(ev=-3))
        weights = torch.tensor([0.2126, 0.7152, 0.0722]).view(1, 3, 1, 1)
        lifted = lift_to_floor(dark, _curve(), floor=0.36)
        mean = float((apply_curve(dark, lifted) * weights).sum(1).mean())
        assert mean == pytest.approx(0.36, abs=0.002) and float(lifted.ev[0]) > 2
        same = lift_to_floor(img, _curve(ev=0.25), floor=0.36)
        assert float(same.ev[0]) == 0.25  # already bright enough: the estimate stands

    def test_a_night_scene_keeps_its_lights(self) -> None:
        """Mostly black sky, a few lights: the mean asks for many stops, the lights allow
        only as many as keep the brightest 1 % within HIGHLIGHT_HEADROOM x white."""
        night = torch.full((1, 3, 64, 64), 0.01)
        night[..., :4, :64] = 0.9  # about 6 % of the pixels: street lights, windows
        lifted = lift_to_floor(night, _curve(), floor=0.38)
        lum_lights = float(srgb_to_linear(torch.tensor(0.9)))
        assert lum_lights * 2 ** float(lifted.ev[0]) <= HIGHLIGHT_HEADROOM + 1e-3
        assert float(lifted.ev[0]) < 3.5  # the black sky alone would take the full 4

    def test_at_most_max_lift(self) -> None:
        black = torch.full((1, 3, 8, 8), 0.001)
        assert float(lift_to_floor(black, _curve(), 0.36, max_lift=2.0).ev[0]) == \
            pytest.approx(2.0, abs=1e-3)


class TestAutoBlack:
    def test_a_lifted_floor_becomes_black_real_blacks_stay(self) -> None:
        img = _t(_scene(4))
        veiled = apply_curve(img, _curve()) * 0.8 + 0.1  # a grey veil over the photo
        params = auto_black(veiled, _curve())
        floor = float(srgb_to_linear(torch.tensor(veiled.mean(1).min().item())))
        assert float(params.black[0]) > 0.5 * floor
        with_black = torch.cat([img[..., :-4], torch.zeros_like(img[..., -4:])], dim=-1)
        assert float(auto_black(with_black, _curve()).black[0]) < 1e-6

    def test_estimate_applies_floor_and_black(self) -> None:
        est = ExposureEstimator(16)
        dark = apply_curve(_t(_scene(5)), _curve(ev=-3)) + 0.02
        raw = est.estimate(dark, floor=0)
        auto = est.estimate(dark)
        assert float(auto.ev[0]) > float(raw.ev[0]) + 1
        assert float(auto.black[0]) > float(raw.black[0])


class TestAreaThumbnail:
    def test_block_means(self) -> None:
        img = np.arange(4 * 6 * 3, dtype=np.float64).reshape(4, 6, 3)
        thumb, f = area_thumbnail(img, side=3)
        assert f == 2 and thumb.shape == (2, 3, 3)
        assert np.allclose(thumb[0, 0], img[:2, :2].mean(axis=(0, 1)))


class TestTrainEstimator:
    """On synthetic photos of known exposure the trained estimator gets the exposure
    right to well within half a stop (median), camera-like and gamma darkenings alike."""

    @pytest.fixture(scope="class")
    def trained(self) -> ExposureEstimator:
        thumbs = ThumbnailSet.from_images([_scene(i) for i in range(24)])
        samples = EstimatorSamples.draw(thumbs, BlindDarkenings(), 800, seed=0, pixels=128)
        return train_estimator(samples, hidden=32, steps=800, batch_size=64, lr=3e-3, seed=0)

    def test_training_lowers_the_loss(self, trained: ExposureEstimator) -> None:
        thumbs = ThumbnailSet.from_images([_scene(i) for i in range(100, 110)])
        val = EstimatorSamples.draw(thumbs, BlindDarkenings(), 100, seed=5, pixels=128)
        before = curve_loss(ExposureEstimator(32), val.features, val.dark, val.clean)
        after = curve_loss(trained, val.features, val.dark, val.clean)
        assert float(after) < 0.3 * float(before)

    @pytest.mark.parametrize("stops", [1.0, 2.0, 3.0, 4.0])
    def test_camera_exposure_within_half_a_stop(self, trained: ExposureEstimator,
                                                stops: float) -> None:
        errors = []
        for i in range(12):
            rng = np.random.default_rng([7, i])
            clean = _scene(200 + i)
            draw = replace(draw_realistic(rng), exposure=2.0**-stops)
            dark = Darkening(camera=draw).apply(clean, rng)
            params = estimate_curve(trained, dark)
            result = apply_curve(_t(dark), params)[0].permute(1, 2, 0).numpy()
            errors.append(abs(exposure_error(result, clean)))
        assert float(np.median(errors)) <= 0.5, errors

    @pytest.mark.parametrize("gamma", [2.0, 3.0, 4.0])
    def test_gamma_darkening_within_half_a_stop(self, trained: ExposureEstimator,
                                                gamma: float) -> None:
        errors = []
        for i in range(12):
            rng = np.random.default_rng([8, i])
            clean = _scene(300 + i)
            dark = Darkening(gamma=gamma, noise_sigma=0.01).apply(clean, rng)
            params = estimate_curve(trained, dark)
            result = apply_curve(_t(dark), params)[0].permute(1, 2, 0).numpy()
            errors.append(abs(exposure_error(result, clean)))
        assert float(np.median(errors)) <= 0.5, errors

    def test_untrained_estimator_is_far_off(self) -> None:
        """The check above can fail: the identity curve misses a 3-stop underexposure."""
        rng = np.random.default_rng(0)
        clean = _scene(400)
        dark = Darkening(camera=replace(draw_realistic(rng), exposure=2.0**-3)).apply(clean, rng)
        result = apply_curve(_t(dark), estimate_curve(ExposureEstimator(32), dark))
        assert abs(exposure_error(result[0].permute(1, 2, 0).numpy(), clean)) > 2.0


class TestFitIntoNetwork:
    def test_estimator_lands_in_the_network(self) -> None:
        from hybridnet import HybridNet, HybridNetConfig

        torch.manual_seed(0)
        net = HybridNet(HybridNetConfig.tiny())
        before = {k: v.clone() for k, v in net.state_dict().items()}
        net, report = fit_into_network(net, [_scene(i) for i in range(8)],
                                       [_scene(50 + i) for i in range(4)],
                                       samples=100, val_samples=20, steps=50)
        after = net.state_dict()
        changed = {k for k in after if not torch.equal(after[k], before[k])}
        assert changed and all(k.startswith("exposure.") for k in changed)
        assert set(report) == {"median |EV error| camera", "median |EV error| gamma"}


class TestTrainExposureCommand:
    """``lowlight train-exposure`` on a tiny data root and a tiny network."""

    @pytest.fixture(scope="class")
    def root(self, tmp_path_factory: pytest.TempPathFactory) -> Path:
        from PIL import Image

        from hybridnet.data import TRAIN_SPLIT, VALIDATION_SPLIT

        root = tmp_path_factory.mktemp("data")
        for n, folder in enumerate((*TRAIN_SPLIT, *VALIDATION_SPLIT)):
            (root / folder).mkdir(parents=True)
            for i in range(2):
                img = np.round(_scene(10 * n + i, 48, 64) * 255).astype(np.uint8)
                Image.fromarray(img).save(root / folder / f"{i}.png")
        return root

    @pytest.fixture(scope="class")
    def network(self, tmp_path_factory: pytest.TempPathFactory) -> Path:
        from hybridnet import HybridNet, HybridNetConfig, save_model

        torch.manual_seed(0)
        return save_model(HybridNet(HybridNetConfig.tiny()),
                          tmp_path_factory.mktemp("n") / "net.safetensors")

    def _run(self, *args: str) -> int:
        from lowlight.cli import main

        return main(["train-exposure", *args])

    def test_trains_and_writes_a_loadable_file(self, root: Path, network: Path,
                                               tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
        from hybridnet import load_model
        from hybridnet.weights_io import read_metadata

        out = tmp_path / "m.safetensors"
        code = self._run(str(network), "--out", str(out), "--data-root", str(root),
                         "--samples", "40", "--steps", "20")
        assert code == 0, capsys.readouterr().err
        assert "median |EV error| camera" in capsys.readouterr().out
        got, before = load_model(out), load_model(network)
        assert read_metadata(out)["estimator_steps"] == "20"
        assert got.exposure is not None and before.exposure is not None
        assert not torch.equal(got.exposure.net[4].weight, before.exposure.net[4].weight)
        assert torch.equal(got.out.weight, before.out.weight)  # the network is untouched
        # the estimator moved into another network's file, and from a run's checkpoint
        ckpt = tmp_path / "checkpoint.pt"
        from hybridnet.train import TrainConfig

        torch.save({"train_config": TrainConfig(model=before.config).to_json(),
                    "model": before.state_dict(), "iteration": 7}, ckpt)
        again = tmp_path / "again.safetensors"
        assert self._run(str(ckpt), "--out", str(again), "--estimator", str(out)) == 0
        moved = load_model(again)
        assert moved.exposure is not None
        assert torch.equal(moved.exposure.net[4].weight, got.exposure.net[4].weight)
        assert "iteration 7" in read_metadata(again)["network"]
        assert read_metadata(again)["iterations"] == "7"  # the training provenance kept

    def test_bad_camera_probability(self, root: Path, network: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
        assert self._run(str(network), "--out", str(tmp_path / "x.safetensors"),
                         "--data-root", str(root), "--camera-probability", "1.5") == 2
        assert "camera_probability" in capsys.readouterr().err
        assert not (tmp_path / "x.safetensors").exists()

    def test_refuses_to_overwrite(self, network: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
        out = tmp_path / "exists.safetensors"
        out.write_bytes(b"mine")
        assert self._run(str(network), "--out", str(out), "--estimator", str(network)) == 2
        assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == b"mine"

    def test_a_network_without_the_estimator_is_a_usage_error(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        from hybridnet import HybridNet, HybridNetConfig, save_model

        legacy = save_model(HybridNet(replace(HybridNetConfig.tiny(), exposure=False,
                                              residual=False)), tmp_path / "old.safetensors")
        assert self._run(str(legacy), "--out", str(tmp_path / "x.safetensors"),
                         "--estimator", str(legacy)) == 2
        assert "no exposure estimator" in capsys.readouterr().err
