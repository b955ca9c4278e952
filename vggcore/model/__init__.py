"""The VGG family: the architecture table (`archs`), the network builder (`network`), torchvision conversion
(`convert`) and the analytic per-layer summary (`summary`). Imports vggcore's top-level modules only."""
