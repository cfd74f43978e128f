"""What the notebooks share: their widgets, with defaults usable interactively."""

from __future__ import annotations

from lakeline.pipeline import Request

DEFAULT_CATALOG = "lakeline_dev"


def request_from_widgets(dbutils, *, dataset: bool = False, layer: bool = False) -> Request:
    """Declare the notebook's widgets and read them into a Request.

    Empty landing / checkpoint roots default to the catalog's volumes, so a notebook
    opened in a workspace runs as is against the dev catalog.
    """
    w = dbutils.widgets
    w.text("catalog", DEFAULT_CATALOG, "Catalog")
    w.text("landing_root", "", "Landing root (default /Volumes/<catalog>/landing/files)")
    w.text("checkpoint_root", "", "Checkpoint root (default /Volumes/<catalog>/ops/checkpoints)")
    w.text("metadata_dir", "../metadata", "Metadata folder")
    w.text("run_id", "interactive", "Run id")
    if dataset:
        w.text("dataset", "orders", "Dataset id")
    if layer:
        w.dropdown("layer", "silver", ["silver", "gold"], "Layer")
    catalog = w.get("catalog")
    return Request(
        catalog=catalog,
        landing_root=w.get("landing_root") or f"/Volumes/{catalog}/landing/files",
        checkpoint_root=w.get("checkpoint_root") or f"/Volumes/{catalog}/ops/checkpoints",
        metadata_dir=w.get("metadata_dir"),
        run_id=w.get("run_id"),
        dataset=w.get("dataset") if dataset else "",
        layer=w.get("layer") if layer else "",
    )
