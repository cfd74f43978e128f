# Databricks notebook source
# MAGIC %md
# MAGIC # lakeline · sync
# MAGIC Compiles the dataset YAML under `metadata_dir` into the Delta control table. Unchanged
# MAGIC metadata leaves the table untouched; invalid metadata fails with every problem listed.

# COMMAND ----------

# Make src/lib importable when the notebook is opened straight from the workspace files.
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.getcwd(), "..", "lib")))

# COMMAND ----------

from lakeline.notebook import request_from_widgets
from lakeline.pipeline import exit_value, run_sync

request = request_from_widgets(dbutils)
result = run_sync(spark, request)

# COMMAND ----------

dbutils.notebook.exit(exit_value(result))
