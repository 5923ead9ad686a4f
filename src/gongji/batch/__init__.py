"""Batch jobs over CSV and Parquet tables of episodes."""
