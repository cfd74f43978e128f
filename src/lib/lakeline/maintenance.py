"""Table maintenance: compaction (OPTIMIZE, Z-ordered by primary key) and VACUUM.

Runs over every table the control table knows: bronze, silver and quarantine per dataset,
and every gold table. VACUUM never goes below Delta's safe retention of 7 days, so time
travel and streaming readers that lag behind keep working.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lakeline.control import load_plan
from lakeline.environment import Environment
from lakeline.errors import LakelineError
from lakeline.identifiers import quote

MIN_RETENTION_HOURS = 168
OPERATIONS = ("optimize", "vacuum")


@dataclass
class MaintenanceResult:
    operation: str
    tables: dict[str, dict] = field(default_factory=dict)


def _targets(spark, env: Environment) -> list[tuple[str, str, list[str]]]:
    """(schema, table, z-order columns) for every existing table of the environment."""
    plan = load_plan(spark, env)
    found = []
    for dataset in plan.datasets.values():
        found.append(("bronze", dataset.id, []))
        found.append(("silver", dataset.id, list(dataset.primary_key)))
        found.append(("quarantine", dataset.id, []))
    found += [("gold", table.name, []) for table in plan.gold]
    return [(s, t, z) for s, t, z in found if env.exists(spark, s, t)]


def optimize(spark, env: Environment) -> MaintenanceResult:
    """Compact small files; silver tables are Z-ordered by their primary key."""
    result = MaintenanceResult("optimize")
    for schema, table, zorder in _targets(spark, env):
        statement = f"OPTIMIZE {env.table(schema, table)}"
        if zorder:
            statement += f" ZORDER BY ({', '.join(quote(c) for c in zorder)})"
        metrics = spark.sql(statement).select("metrics.numFilesAdded", "metrics.numFilesRemoved")
        added, removed = metrics.first()
        result.tables[f"{schema}.{table}"] = {"files_added": added, "files_removed": removed}
    return result


def vacuum(spark, env: Environment, retention_hours: int) -> MaintenanceResult:
    """Remove files no table version within ``retention_hours`` still needs."""
    if retention_hours < MIN_RETENTION_HOURS:
        raise LakelineError(
            f"vacuum_retention_hours is {retention_hours}; it must be at least "
            f"{MIN_RETENTION_HOURS} (7 days) so time travel and lagging streams stay safe"
        )
    result = MaintenanceResult("vacuum")
    for schema, table, _ in _targets(spark, env):
        spark.sql(f"VACUUM {env.table(schema, table)} RETAIN {int(retention_hours)} HOURS")
        result.tables[f"{schema}.{table}"] = {"retention_hours": retention_hours}
    return result


def run(spark, env: Environment, operation: str, retention_hours: int) -> MaintenanceResult:
    if operation == "optimize":
        return optimize(spark, env)
    if operation == "vacuum":
        return vacuum(spark, env, retention_hours)
    raise LakelineError(f"operation must be one of {', '.join(OPERATIONS)}, not {operation!r}")
