"""Frames in: camera, video, folder and synthetic-scenario streams, and the capture thread."""
