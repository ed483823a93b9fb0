"""tidings: collect shopper behaviour, build profiles, personalise email at open time."""

__version__ = "0.1.0"
