# Databricks notebook source
# MAGIC %md
# MAGIC # lakeline · maintenance
# MAGIC `operation = optimize`: compacts every table the control table knows (silver Z-ordered by
# MAGIC primary key). `operation = vacuum`: removes files older than `vacuum_retention_hours`
# MAGIC (at least 168, Delta's safe retention).

# COMMAND ----------

# Make src/lib importable when the notebook is opened straight from the workspace files.
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.getcwd(), "..", "lib")))

# COMMAND ----------

from lakeline.notebook import request_from_widgets
from lakeline.pipeline import exit_value, run_maintenance

request = request_from_widgets(dbutils)
dbutils.widgets.dropdown("operation", "optimize", ["optimize", "vacuum"], "Operation")
dbutils.widgets.text("vacuum_retention_hours", "168", "VACUUM retention (hours)")
result = run_maintenance(
    spark,
    request,
    dbutils.widgets.get("operation"),
    int(dbutils.widgets.get("vacuum_retention_hours")),
)

# COMMAND ----------

dbutils.notebook.exit(exit_value(result))
