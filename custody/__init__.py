"""custody's composition root: the command line and its wiring."""
