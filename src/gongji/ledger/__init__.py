"""Double-entry journal in fen, append-only, hash-chained; transparency queries."""
