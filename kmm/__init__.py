"""KMM: Key Frame Mask Mamba for extended text-to-motion generation (arXiv 2411.06481)."""

__version__ = "0.1.0"
