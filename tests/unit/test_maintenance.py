"""OPTIMIZE compacts every table the control table knows; VACUUM keeps a safe retention."""

import pytest

from lakeline import control, maintenance
from lakeline.errors import LakelineError


def test_optimize_compacts_small_files_and_vacuum_is_safe(spark, env, repo):
    control.sync(spark, env, repo / "src" / "metadata", "r1")
    name = env.table("silver", "orders")
    spark.sql(f"CREATE TABLE {name} (order_id BIGINT, note STRING) USING DELTA")
    for i in range(3):  # three appends: three small files
        spark.createDataFrame([(i, "x")], "order_id BIGINT, note STRING").coalesce(1).write.format(
            "delta"
        ).mode("append").saveAsTable(name)

    result = maintenance.optimize(spark, env)
    assert result.tables["silver.orders"] == {"files_added": 1, "files_removed": 3}
    last = spark.sql(f"DESCRIBE HISTORY {name} LIMIT 1").first()
    assert last.operation == "OPTIMIZE" and '["order_id"]' in last.operationParameters["zOrderBy"]
    assert spark.table(name).count() == 3

    vacuumed = maintenance.vacuum(spark, env, 168)
    assert "silver.orders" in vacuumed.tables
    assert spark.sql(f"SELECT * FROM {name} VERSION AS OF 1").count() == 1  # history kept

    with pytest.raises(LakelineError, match="at least 168"):
        maintenance.vacuum(spark, env, 24)
