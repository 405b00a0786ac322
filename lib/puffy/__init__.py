"""Puffy daily analytics pipeline: data-quality gate, transform, monitoring and executive reporting.

The package is a thin library under the notebooks in ``notebooks/``: pure functions over tables,
configuration as validated data (``params/*.yaml``), and I/O only at the edges (``ingest``,
``warehouse``, ``runner``).
"""

__version__ = "0.1.0"
