# Databricks notebook source
# MAGIC %md
# MAGIC # lakeline · maintenance
# MAGIC PLACEHOLDER (delivery side): the maintenance job in resources/maintenance_job.yml runs this
# MAGIC notebook with the widget `operation` = `optimize` or `vacuum`, plus the job parameters
# MAGIC `catalog`, `metadata_dir` and `vacuum_retention_hours`. The core library replaces it.

# COMMAND ----------

dbutils.notebook.exit("{}")
