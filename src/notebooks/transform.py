# Databricks notebook source
# MAGIC %md
# MAGIC # lakeline · transform
# MAGIC `layer = silver`: types, checks, deduplicates and merges one dataset's new bronze rows
# MAGIC into silver (failing rows to quarantine with reasons). `layer = gold`: rebuilds the gold
# MAGIC tables in dependency order.

# COMMAND ----------

# Make src/lib importable when the notebook is opened straight from the workspace files.
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.getcwd(), "..", "lib")))

# COMMAND ----------

from lakeline.notebook import request_from_widgets
from lakeline.pipeline import exit_value, run_transform

request = request_from_widgets(dbutils, dataset=True, layer=True)
result = run_transform(spark, request)

# COMMAND ----------

dbutils.notebook.exit(exit_value(result))
