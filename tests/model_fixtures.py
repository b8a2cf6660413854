"""Session fixtures that train tiny detectors from scratch (no downloads); filled in by the detector work."""
