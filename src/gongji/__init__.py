"""共济 Gongji — the supplementary layers of China's medical security, settled in order."""

__version__ = "0.1.0"
