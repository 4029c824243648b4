"""The P-DARTS search: supernet (``model``), one progressive stage (``stage``), pruning between
stages (``pruning``) and genotype derivation with the skip-connect cap (``derivation``).

Submodules are imported where they are used, so that the torch-free parts (pruning, derivation)
load without torch.
"""
