"""One file per revision, numbered in order; each names the one before it."""
