# Databricks notebook source
# MAGIC %md
# MAGIC # lakeline · plan
# MAGIC Reads the control table and publishes the enabled dataset ids as the task value
# MAGIC `datasets`, which the for-each tasks iterate over.

# COMMAND ----------

# Make src/lib importable when the notebook is opened straight from the workspace files.
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.getcwd(), "..", "lib")))

# COMMAND ----------

from lakeline.notebook import request_from_widgets
from lakeline.pipeline import exit_value, run_plan

request = request_from_widgets(dbutils)
datasets = run_plan(spark, request)
dbutils.jobs.taskValues.set(key="datasets", value=datasets)

# COMMAND ----------

dbutils.notebook.exit(exit_value(datasets))
