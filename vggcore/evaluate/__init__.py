"""Evaluation: scoring a split and the paper's test protocols on a net (`score`), the protocols as data
(`protocols`), precise BatchNorm (`batchnorm`), and scoring trained run folders (`runs`, which reads their
checkpoints through train.checkpoint). May import the model, data and train rooms."""
