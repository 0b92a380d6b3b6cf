"""serving: self-hosted open-model serving, planner, launcher and API-parity fallback gateway."""

__version__ = "0.1.0"
