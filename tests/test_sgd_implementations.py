"""Which SGD implementations are correct, decided by test: `vggcore.train.sgd.BITWISE_SGD` lists, per device, those
that give bit for bit the parameters of PyTorch's for-loop SGD (momentum and weight decay included), and the
default (`DEFAULT_SGD`) must be one of them, so choosing it changes no training result and needs no config field.

Both directions are checked on every device present: each listed implementation matches the for-loop exactly
over several steps of a tiny VGG (fp32 and bf16 autocast, channels_last too) and of tensors whose sizes leave a
tail after the last full vector; each unlisted one differs somewhere in those tensors, so the table never calls an
implementation that changes numerics bitwise-identical, nor misses one that became so (then: list it)."""

import pytest
import torch

from vggcore import build
from vggcore.train.sgd import BITWISE_SGD, DEFAULT_SGD, SGD_CHOICES, default_sgd, sgd
from vggcore.train.step import train_step
from vggcore.config import TrainConfig

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
# Sizes with a tail past every vector width a kernel may use (8, 16, 32 lanes) and one that fills them exactly.
TAILS = (10, 31, 257, 4101, 64)
STEPS = 6


# one thread (tests/conftest.py): reductions split over threads differently would differ for reasons that are not
# the optimizer's
pytestmark = pytest.mark.usefixtures("one_thread")


def vgg_after_steps(implementation: str, device: str, dtype: str, channels_last: bool) -> dict[str, torch.Tensor]:
    """A tiny VGG with BatchNorm after STEPS training steps of the paper's SGD (lr raised so every step moves the
    weights) run by `implementation`; every parameter, buffer and momentum buffer."""
    torch.manual_seed(0)
    model = build("A", width=0.125, image_size=32, num_classes=10, dropout=0.0, batch_norm=True).to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    optimizer = sgd(model.parameters(), TrainConfig(lr=0.05), implementation=implementation)
    gen = torch.Generator().manual_seed(1)
    for _ in range(STEPS):
        x = torch.randn(4, 3, 32, 32, generator=gen).to(device, memory_format=fmt)
        y = torch.randint(0, 10, (4,), generator=gen).to(device)
        train_step(model, optimizer, [(x, y)], dtype=dtype)
    state = {f"model.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    for i, p in enumerate(model.parameters()):
        state[f"momentum.{i}"] = optimizer.state[p]["momentum_buffer"].clone()
    return state


def tails_after_steps(implementation: str, device: str) -> dict[str, torch.Tensor]:
    """Standalone parameters of TAILS sizes after STEPS steps on seeded gradients."""
    gen = torch.Generator().manual_seed(2)
    params = [torch.nn.Parameter(torch.randn(n, generator=gen).to(device)) for n in TAILS]
    grads = [[torch.randn(n, generator=gen).to(device) for n in TAILS] for _ in range(STEPS)]
    optimizer = sgd(params, TrainConfig(lr=0.05), implementation=implementation)
    for step in grads:
        for p, g in zip(params, step):
            p.grad = g.clone()
        optimizer.step()
    return {f"tail{n}": p.detach().clone() for n, p in zip(TAILS, params)}


def differing(a: dict, b: dict) -> list[str]:
    return [k for k in a if not torch.equal(a[k], b[k])]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype,channels_last", [("fp32", False), ("bf16", False), ("fp32", True)])
def test_listed_implementations_match_the_for_loop_bit_for_bit(device, dtype, channels_last):
    reference = vgg_after_steps("for-loop", device, dtype, channels_last)
    for implementation in BITWISE_SGD[device]:
        assert differing(vgg_after_steps(implementation, device, dtype, channels_last), reference) == [], \
            f"{implementation} on {device} does not match the for-loop: remove it from BITWISE_SGD[{device!r}]"


@pytest.mark.parametrize("device", DEVICES)
def test_the_table_is_exact_on_tensors_with_tails(device):
    reference = tails_after_steps("for-loop", device)
    for implementation in SGD_CHOICES:
        same = differing(tails_after_steps(implementation, device), reference) == []
        listed = implementation in BITWISE_SGD[device]
        assert same == listed, (f"{implementation} on {device} {'matches' if same else 'differs from'} the "
                                f"for-loop bit for bit, but BITWISE_SGD[{device!r}] says otherwise: update it")


def test_the_default_is_a_bitwise_one_on_every_device():
    for device, implementation in DEFAULT_SGD.items():
        # cuda: foreach is PyTorch's own default there ("auto"), so runs recorded before are foreach runs already;
        # it stays the default until a GPU run of the tests above lists it or shows it differs.
        assert implementation in BITWISE_SGD[device] or (device, implementation) == ("cuda", "foreach"), device
    assert default_sgd("cuda:1") == DEFAULT_SGD["cuda"] and default_sgd("cpu") == "foreach"


def test_sgd_picks_the_default_for_the_parameters_device():
    model = build("A", width=0.125, image_size=32, num_classes=10)
    group = sgd(model.parameters(), TrainConfig()).param_groups[0]
    assert group["foreach"] is True and not group["fused"]
    assert sgd(model.parameters(), TrainConfig(), implementation="fused").param_groups[0]["fused"] is True
    assert sgd(model.parameters(), TrainConfig(), implementation="for-loop").param_groups[0]["foreach"] is False


def test_the_trainers_runs_are_those_of_the_old_default():
    """The trainer's default now runs foreach on CPU where it ran PyTorch's "auto" (the for-loop): the same
    parameters, bit for bit, so recorded runs resume and keep their run ids without a config field."""
    auto = vgg_after_steps("auto", "cpu", "fp32", False)
    assert differing(vgg_after_steps(default_sgd("cpu"), "cpu", "fp32", False), auto) == []
