"""Datasets (digits, CIFAR, image folders, synthetic), the paper's preprocessing and augmentation, and the batch
iterator training and evaluation read. Imports vggcore's top-level modules only.
"""
