"""The local harness: run the bundle's job and its unchanged notebooks on a laptop."""
