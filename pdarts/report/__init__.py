"""The drawing layer of a run report: cell diagrams of a genotype (``cells``) and figures of a search and a
training run (``figures``), all drawn with matplotlib (Agg, no pyplot) into deterministic files."""
