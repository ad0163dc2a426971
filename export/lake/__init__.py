"""The Parquet lake of the cloud side (layout and schemas: docs/lake.md, export/lake/tables.py)."""
