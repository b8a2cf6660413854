"""The detector on the device: ONNX runner, detections, letterbox and NMS, model slot, verify and updater."""
