"""Where a step's time goes: the per-layer profiler (`profiler`), the profiler's events (`events`), the planned
rows (`plan`) and their table (`rows`), against the roofline (`roofline`) whose roofs are measured in the same run
(`roofs`); `noise` keeps Kineto's own lines off the terminal. May import the model, data, train and evaluate rooms."""

MODES = ("forward", "forward_backward", "train_step")   # the steps a profile can time
