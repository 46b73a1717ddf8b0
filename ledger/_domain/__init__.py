"""The write side's pure core: the Profile aggregate, its events, states and rules. No I/O."""
