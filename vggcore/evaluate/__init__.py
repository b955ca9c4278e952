"""Evaluation: scoring a split, the paper's test protocols, precise BatchNorm, scoring trained run folders. May
import model and data.
"""
