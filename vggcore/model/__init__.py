"""The VGG family: the architecture table, the network builder, torchvision conversion, the analytic per-layer
summary. Imports vggcore's top-level modules only.
"""
