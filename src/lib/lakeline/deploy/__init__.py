"""Delivery: blue/green promotion and rollback of the production bundle targets.

``lakeline.deploy.bluegreen`` holds the logic (on databricks-sdk), ``lakeline.deploy.bundle_cli``
runs the Databricks CLI, ``lakeline.deploy.cli`` is the command line
(``python -m lakeline.deploy promote|rollback|status|unlock``).
"""

from lakeline.deploy.bluegreen import (
    COLORS,
    BlueGreenConfig,
    BlueGreenError,
    OperationInProgress,
    Outcome,
    SmokeRunFailed,
    live_color,
    promote,
    rollback,
    status,
)

__all__ = [
    "COLORS",
    "BlueGreenConfig",
    "BlueGreenError",
    "OperationInProgress",
    "Outcome",
    "SmokeRunFailed",
    "live_color",
    "promote",
    "rollback",
    "status",
]
