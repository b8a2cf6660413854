"""Co-inference: split an ultralytics detector into an endpoint head and an edge tail, profile, compress, choose."""
