# Databricks notebook source
# MAGIC %md
# MAGIC # lakeline · ingest
# MAGIC Appends what is new in one dataset's source to its bronze table (each file exactly
# MAGIC once), with run id, source file and ingestion time on every row.

# COMMAND ----------

# Make src/lib importable when the notebook is opened straight from the workspace files.
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.getcwd(), "..", "lib")))

# COMMAND ----------

from lakeline.notebook import request_from_widgets
from lakeline.pipeline import exit_value, run_ingest

request = request_from_widgets(dbutils, dataset=True)
result = run_ingest(spark, request)

# COMMAND ----------

dbutils.notebook.exit(exit_value(result))
