"""Devices and generators from user arguments."""

from __future__ import annotations

import pytest
import torch

from gradfolio import ConfigError
from gradfolio.seeding import make_generator, resolve_device


def test_same_seed_same_numbers() -> None:
    a = torch.rand(4, generator=make_generator(11))
    b = torch.rand(4, generator=make_generator(11))
    assert torch.equal(a, b)
    assert not torch.equal(a, torch.rand(4, generator=make_generator(12)))
    gen = torch.Generator()
    assert make_generator(gen) is gen


def test_devices() -> None:
    assert resolve_device(None) == torch.device("cpu")
    with pytest.raises(ConfigError, match="not a torch device"):
        resolve_device("gpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")
