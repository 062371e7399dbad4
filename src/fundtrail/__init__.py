"""FundTrail: trace, freeze, seize and return crypto assets that fund cybercrime."""

__version__ = "0.1.0"
