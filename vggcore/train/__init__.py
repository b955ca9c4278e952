"""Training: the loop with its checkpoints and resume (`loop`), one run's parts (`trainer`), one epoch (`epoch`),
the one SGD step (`step`) and the SGD that takes it (`sgd`), learning-rate schedules (`schedules`), data-parallel
worlds under torchrun (`distributed`), checkpoints (`checkpoint`), the fastest setting by measurement
(`fastest`). May import the model, data and evaluate rooms."""
