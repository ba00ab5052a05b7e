"""Loom's worker for Hugging Face TRL: claims training rounds over Loom's HTTP API, trains the
reward model and the policy with TRL, and sends the results back. The protocol and config modules
use the standard library only, so they import (and are tested) without torch."""

__version__ = "0.1.0"
