"""gradsim: gradient statistics of random ReLU networks, beside closed-form theory."""

__version__ = "0.1.0"
