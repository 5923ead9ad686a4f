"""Shared kernel: money in fen, resident identity, errors, settings, database."""
