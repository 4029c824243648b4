"""pdarts: P-DARTS (progressive differentiable architecture search, ICCV 2019) as a cached pipeline."""

__version__ = "0.1.0"
