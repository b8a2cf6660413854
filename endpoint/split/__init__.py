"""Co-inference on the device: the split head, its config, the client that talks to the split server, its main."""
