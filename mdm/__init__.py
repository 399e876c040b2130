"""Customer master data pipeline of a retail bank: one golden customer ID per real person."""

__version__ = "0.1.0"
