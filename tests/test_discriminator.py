"""The discriminator of Table I."""

from __future__ import annotations

import pytest
import torch

from hybridnet import Discriminator
from hybridnet.discriminator import TABLE_I
from hybridnet.errors import InvalidInputError

# Table I: (layer, out channels, kernel, stride, output size) for a 128x128 input.
EXPECTED = [
    ("Conv1-1", 32, 5, 2, 64),
    ("Conv1-2", 64, 3, 1, 64),
    ("Conv2-1", 64, 5, 2, 32),
    ("Conv2-2", 128, 3, 1, 32),
    ("Conv3-1", 128, 5, 2, 16),
    ("Conv3-2", 256, 3, 1, 16),
    ("Conv4-1", 256, 5, 2, 8),
    ("Conv4-2", 512, 3, 1, 8),
    ("Conv5-1", 512, 5, 2, 4),
    ("Conv5-2", 1, 4, 1, 1),
]


class TestTableI:
    def test_layers_match_the_table(self) -> None:
        d = Discriminator()
        convs = [m for m in d.layers if isinstance(m, torch.nn.Conv2d)]
        assert len(convs) == 10
        x = torch.rand(1, 3, 128, 128)
        for conv, (name, out_ch, k, s, _size), row in zip(convs, EXPECTED, TABLE_I, strict=True):
            assert (conv.out_channels, conv.kernel_size, conv.stride) == (out_ch, (k, k), (s, s))
            assert row == (out_ch, k, s), name
        shapes = []
        for m in d.layers:
            x = m(x)
            if isinstance(m, torch.nn.Conv2d):
                shapes.append(tuple(x.shape[-2:]))
        assert shapes == [(e[4], e[4]) for e in EXPECTED]

    def test_leaky_relu_after_every_conv_but_the_last(self) -> None:
        d = Discriminator(leaky_slope=0.1)
        kinds = [type(m).__name__ for m in d.layers]
        assert kinds == ["Conv2d", "LeakyReLU"] * 9 + ["Conv2d"]
        assert all(m.negative_slope == 0.1 for m in d.layers if isinstance(m, torch.nn.LeakyReLU))

    def test_probability_in_unit_interval(self) -> None:
        d = Discriminator()
        prob = d.probability(torch.rand(4, 3, 128, 128))
        assert prob.shape == (4,)
        assert ((prob > 0) & (prob < 1)).all()

    def test_probability_is_sigmoid_of_logit(self) -> None:
        d = Discriminator()
        x = torch.rand(2, 3, 128, 128)
        with torch.no_grad():
            assert torch.allclose(d.probability(x), torch.sigmoid(d(x)))

    def test_larger_inputs_average_patch_scores(self) -> None:
        torch.manual_seed(0)
        d = Discriminator()
        x = torch.rand(2, 3, 160, 192)
        scores = d.layers(x)
        assert scores.shape[-2:] == (2, 3)
        assert torch.allclose(d(x), scores.flatten(1).mean(1))


class TestBadInput:
    @pytest.mark.parametrize("shape", [(1, 3, 64, 64), (1, 3, 130, 128), (1, 1, 128, 128)])
    def test_refused(self, shape: tuple[int, ...]) -> None:
        with pytest.raises(InvalidInputError):
            Discriminator()(torch.rand(*shape))
