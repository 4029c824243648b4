"""The seeds sweep: every method (P-DARTS, the DARTS and random baselines) on every seed, and the
aggregate (docs/workflow.md#the-seeds-sweep)."""
