"""Devices and generators from user arguments."""

from __future__ import annotations

import pytest
import torch

from gradfolio import ConfigError
from gradfolio.seeding import TorchDType, make_generator, resolve_device, resolve_dtype


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


@pytest.mark.parametrize(("given", "expected"), [
    ("float32", torch.float32), ("float64", torch.float64), ("torch.float16", torch.float16), ("double", torch.float64),
    (torch.bfloat16, torch.bfloat16),
])
def test_resolve_dtype_from_names_and_dtypes(given: object, expected: torch.dtype) -> None:
    assert resolve_dtype(given) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["int64", "float128x", "cuda", torch.int32])
def test_resolve_dtype_rejects_what_is_not_a_float_dtype(bad: object) -> None:
    with pytest.raises(ConfigError, match="not a floating-point torch dtype"):
        resolve_dtype(bad)  # type: ignore[arg-type]


def test_torch_dtype_in_a_typed_signature_takes_yaml_names_and_null() -> None:
    from gradfolio.registry import Registry

    reg: Registry[object] = Registry("solver")
    reg.register("f", _with_dtype)
    assert reg.build("f", dtype="float32") is torch.float32
    assert reg.build("f", dtype=None) is None
    assert reg.build("f", dtype=torch.float64) is torch.float64
    with pytest.raises(ConfigError, match=r"^solver.dtype: .*expected a floating-point torch dtype"):
        reg.build("f", dtype=3)
    with pytest.raises(ConfigError, match=r"^solver.dtype: dtype='int8' is not a floating-point"):
        reg.build("f", dtype="int8")


def _with_dtype(dtype: TorchDType | None = torch.float64) -> torch.dtype | None:
    return dtype
