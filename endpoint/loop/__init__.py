"""The per-frame loop: read, detect, sample, write to the spool; run statistics and the loop benchmark."""
