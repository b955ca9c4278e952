"""The tiny study the runner tests train: VGG-A with BatchNorm at width 0.125 on 32x32 digits, dropout on/off."""

TINY = """
[study]
name = "{name}"
design = "{design}"
seeds = {seeds}
metric = "test_top1_error"

[base.model]
arch = "A"
batch_norm = true
width = 0.125
image_size = 32

[base.data]
augment = "none"{data}

[base.train]
epochs = {epochs}
batch_size = 128

[factors.dropout]
levels.on = {{ "model.dropout" = 0.5 }}
levels.off = {{ "model.dropout" = 0.0 }}
"""
# A second factor whose level fails every run: CIFAR-10 from a folder that does not exist.
BROKEN = """
[factors.data]
levels.digits = { "data.dataset" = "digits" }
levels.missing = { "data.dataset" = "cifar10", "data.data_root" = "/nonexistent/cifar" }
"""


def tiny_study(name="tiny", design="one_at_a_time", seeds="[0]", epochs=1, extra="", data="") -> str:
    """`data`: more [base.data] lines, e.g. a small synthetic set for a test whose property is not learning."""
    data = "\n" + data.rstrip("\n") if data else ""
    return TINY.format(name=name, design=design, seeds=seeds, epochs=epochs, data=data) + extra
