"""Kiln trainer: FLUX LoRA / full fine-tuning driven by a JSON spec, reporting JSON events."""

__version__ = "0.1.0"
