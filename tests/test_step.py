"""One training step and one SGD: the trainer, the benchmark's forward_backward/train_step and the scaling
benchmark all run `vggcore.train.step.train_step` with the SGD `vggcore.train.sgd.sgd` builds."""

import copy
import dataclasses

import pytest
import torch

import bench.runner
import bench.scaling
import vggcore.config
import vggcore.data.batches
import vggcore.evaluate.batchnorm
import vggcore.evaluate.score
import vggcore.train.epoch
import vggcore.train.loop
from bench.cases import BenchCase
from vggcore import VGGConfig, build
from vggcore.config import DataConfig
from vggcore.world import World
from vggcore.train.sgd import SGD_IMPLEMENTATIONS, sgd
from vggcore.train.step import forward_loss, micro_batches, train_step
from vggcore.config import TrainConfig
from vggcore.train.loop import train
from vggcore.threads import torch_threads

MODEL = VGGConfig(arch="A", width=0.125, image_size=32, num_classes=10, dropout=0.0)


def test_sgd_takes_the_paper_settings_from_the_config_and_the_devices_default_implementation():
    model = build(MODEL)
    paper = sgd(model.parameters(), TrainConfig())
    group = paper.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (1e-2, 0.9, 5e-4)
    assert group["foreach"] is True and not group["fused"]  # DEFAULT_SGD["cpu"]: bitwise the for-loop, see
    assert sgd(model.parameters(), TrainConfig(), implementation="auto").param_groups[0]["foreach"] is None
    # tests/test_sgd_implementations.py
    other = sgd(model.parameters(), TrainConfig(lr=0.3, momentum=0.5, weight_decay=0.0), implementation="for-loop")
    group = other.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"], group["foreach"]) == (0.3, 0.5, 0.0, False)
    assert sgd(model.parameters(), TrainConfig(), implementation="foreach").param_groups[0]["foreach"] is True
    assert set(SGD_IMPLEMENTATIONS) == {"auto", "for-loop", "foreach", "fused"}
    with pytest.raises(ValueError, match="unknown SGD implementation 'magic'; choose auto, for-loop"):
        sgd(model.parameters(), TrainConfig(), implementation="magic")


def spy(monkeypatch, module) -> list:
    """Record every call of `train_step` made through `module`."""
    calls, real = [], module.train_step

    def recording(model, optimizer, pieces, **kw):
        calls.append((optimizer, kw))
        return real(model, optimizer, pieces, **kw)

    monkeypatch.setattr(module, "train_step", recording)
    return calls


@pytest.mark.parametrize("mode", ["forward_backward", "train_step"])
def test_the_benchmark_times_the_training_step(monkeypatch, mode):
    calls = spy(monkeypatch, bench.runner)
    case = BenchCase(arch="A", mode=mode, batch_size=2, image_size=32, width=0.125, device="cpu", dtype="bf16",
                     channels_last=False, compiled=False, implementation="vggcore")
    model = bench.runner.make_model(case)
    before = copy.deepcopy(model)
    step = bench.runner.Step(case, model)
    torch.manual_seed(1)  # the same dropout masks for both
    step()
    (optimizer, kw), = calls
    assert kw["dtype"] == "bf16"
    assert (optimizer is None) == (mode == "forward_backward")
    if mode == "train_step":
        group = optimizer.param_groups[0]
        assert (group["momentum"], group["weight_decay"], group["foreach"]) == (0.9, 5e-4, True)
        # bit for bit what training's own step and SGD do to the same network and batch
        same = sgd(before.parameters(), TrainConfig())
        torch.manual_seed(1)
        train_step(before.train(), same, [(step.x, step.y)], dtype="bf16")
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), before.state_dict().values()))


def test_the_trainer_steps_through_train_step(monkeypatch):
    calls = spy(monkeypatch, vggcore.train.epoch)
    cfg = TrainConfig(epochs=1, batch_size=16, micro_batch=8, threads=1)
    result = train(VGGConfig("A", width=0.125, image_size=32), DataConfig("synthetic", synthetic_samples=64), cfg,
                   progress=False)
    assert result["status"] == "ok" and len(calls) >= 2
    for optimizer, kw in calls:
        group = optimizer.param_groups[0]
        assert (group["lr"], group["momentum"], group["weight_decay"]) == (cfg.lr, cfg.momentum, cfg.weight_decay)
        assert group["foreach"] is True   # vggcore.train.sgd.DEFAULT_SGD["cpu"]
        assert kw["dtype"] == "fp32" and kw["world_size"] == 1 and kw["check"] is not None


def test_the_scaling_benchmark_steps_through_train_step(monkeypatch):
    """One rank of a world of one, run in this process: it joins through training's set-up and takes
    training's step with training's SGD."""
    import vggcore.train.distributed
    import vggcore.train.step

    calls = spy(monkeypatch, vggcore.train.step)
    joined = []
    real_setup = vggcore.train.distributed.setup
    monkeypatch.setattr(vggcore.train.distributed, "setup", lambda *a, **kw: joined.append(kw) or real_setup(*a, **kw))

    class Conn:  # the parent's end of the pipe: one step, then stop
        def __init__(self):
            self.sent, self.inbox = [], ["step", "stop"]

        def send(self, message):
            self.sent.append(message)

        def recv(self):
            return self.inbox.pop(0)

    case = bench.scaling.ScalingCase("A", 2, 32, 0.125, "cpu", "fp32", 1)
    conn = Conn()
    with torch_threads(None):   # a rank sets its own count; the block puts this process's back
        bench.scaling._rank_main(dataclasses.asdict(case), 0, bench.scaling.free_port(), conn)
    assert [kind for kind, _ in conn.sent] == ["ready", "done"], conn.sent
    assert conn.sent[0][1]["backend"] == "gloo" and not torch.distributed.is_initialized()
    assert joined and joined[0]["rank"] == 0 and joined[0]["world_size"] == 1
    assert len(calls) == 3  # two warm-up steps and the one asked for
    group = calls[0][0].param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (1e-2, 0.9, 5e-4)
    assert calls[0][1]["world_size"] == 1 and calls[0][1]["dtype"] == "fp32"


def test_micro_batches_weigh_to_the_whole_batch_gradient():
    """Accumulating pieces of 3 + 3 + 2 images gives the gradient of the 8-image mean loss."""
    torch.manual_seed(0)
    model = build(MODEL)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    whole = copy.deepcopy(model)
    loss, n = train_step(model, None, micro_batches(x, y, 3))[::2]
    whole_loss = train_step(whole, None, [(x, y)])[0]
    assert n == 8 and loss == pytest.approx(whole_loss, rel=1e-5)
    for (name, a), b in zip(model.named_parameters(), whole.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=name)
    assert [len(p[1]) for p in micro_batches(x, y, 3)] == [3, 3, 2]
    # in a world of 2 every rank runs as many pieces as the largest slice needs
    two = World(rank=1, world_size=2, backend="gloo")
    assert [len(p[1]) for p in micro_batches(x[:3], y[:3], 2, global_n=7, world=two)] == [2, 1]


def test_check_sees_the_step_before_the_update_and_can_refuse_it():
    torch.manual_seed(0)
    model = build(MODEL)
    optimizer = sgd(model.parameters(), TrainConfig())
    before = copy.deepcopy(model.state_dict())
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))

    class Refused(Exception):
        pass

    def refuse(loss_sum, correct, n):
        assert n == 4 and 0 <= correct <= 4 and loss_sum > 0
        raise Refused

    with pytest.raises(Refused):
        train_step(model, optimizer, [(x, y)], check=refuse)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # no update was taken
    assert train_step(model, optimizer, [(x, y)], check=lambda *s: (1.0, 2, 3)) == (1.0, 2, 3)


def test_loss_is_taken_on_fp32_logits_under_autocast():
    model = build(MODEL)
    x, y = torch.randn(2, 3, 32, 32), torch.randint(0, 10, (2,))
    loss, logits = forward_loss(model, x, y, "bf16")
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32
