"""Everything that leaves the device: MQTT link, spool, token bucket, sampler, uplink, detections publisher."""
