"""The suspect graph's vocabulary, shared by both engines: the kinds of link between two SIMs, how
many shared keys make a link whole, and how weights are rounded before anything compares them
(see `jobs.dens.graph` for what each kind means). Engine-free: `cluster`, `describe` and the
local engine's `graph_local` read these without importing Spark."""

from __future__ import annotations

KINDS = ("shared_id", "colocation", "segment", "mutual_call", "callees")
IMEI_NODE = "imei:"  # the node prefix devices had; kept so older groups and tests read the same
EDGE_COLUMNS = ("a", "b", "weight", *KINDS)
WEIGHT_DECIMALS = 9  # float sums may differ in the last bits with the summation order: compare rounded
# How many shared keys make a kind's link whole: "x min(1, shared/k)" in `jobs.dens.graph`'s doc.
SATURATE = {"shared_id": 1, "colocation": 3, "segment": 3, "callees": 5}
# A Chinese mobile number, whose segment is the 7 digits after +86 (`+8613912345678` -> `1391234`).
CHINESE_MOBILE = r"^\+861[0-9]{10}$"
MUTUAL_CALL_WEIGHT = 0.5


def edges_cut_warning(n_capped: int, max_degree: int, max_edges: int) -> str:
    """The warning when more than `max_edges` links remain after the degree cap."""
    return (
        f"suspect graph: {n_capped:,} links after the degree cap (dens.max_degree "
        f"{max_degree}), only the {max_edges:,} heaviest kept (dens.max_edges); "
        f"dens may be cut short"
    )
