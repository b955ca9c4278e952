"""Data: the datasets (`datasets`: digits, CIFAR, synthetic; `folder`: ImageNet-style folders), the pickle reader
that runs no code (`safe_pickle`), the augmentation presets (`presets`), the paper's preprocessing on the device
(`transforms`) and the batch iterator training and evaluation read (`batches`). May import the model room."""
