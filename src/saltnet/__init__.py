"""saltnet: the library behind the TGS salt pipeline. Never imports snakemake."""

__all__ = ["__version__"]
__version__ = "0.1.0"
