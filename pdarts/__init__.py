"""pdarts: P-DARTS (progressive differentiable architecture search, ICCV 2019) as a cached pipeline.

The layers, from the bottom: the search space and ops (``search_space``, ``operations``, ``layers``,
``genotype``, ``alphas``); the networks (``networks/``: evaluation cells and networks; ``search/``:
the supernet, one progressive stage, pruning, derivation); data (``data/``, ``manifest``); training
(``training``, ``schedules``, ``precision``, ``distributed``, ``state``, ``checkpoints``); settings
(``config``: the schema, ``settings``: one typed class per section). ``cli/`` turns each pipeline step
into a command: flags into a settings object, inputs read, one library call, artifacts written.
See docs/README.md.
"""

__version__ = "0.1.0"
