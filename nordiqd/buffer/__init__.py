"""The durable buffer: validation, write-ahead log, daily Parquet files, reading back.

Plain modules that do not know they run in a process; the ingest role drives them.
"""
