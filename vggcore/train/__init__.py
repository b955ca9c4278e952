"""Training: the loop and its resume, one epoch, the one SGD step, schedules, seeds, data-parallel worlds,
checkpoints, the fastest memory format. May import model, data and evaluate.
"""
