"""Record model and encoding: pure values and functions, no I/O."""
