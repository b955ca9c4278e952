"""The level every decision, interval and plan uses unless a study or a command says otherwise, in one place
(importable without numpy: `ablations.store` reads it for a study run with fixed seeds, one look)."""

ALPHA = 0.05   # family-wise false better/worse of a study's decisions; (1 - ALPHA) intervals
