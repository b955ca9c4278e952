"""Where a step's time goes: per-layer profiles of forward, backward and the optimizer against the roofline
measured in the same run, and the machine's measured peaks. May import model and train.
"""

MODES = ("forward", "forward_backward", "train_step")   # the steps a profile can time
