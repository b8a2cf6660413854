"""The learner: the edge role that plans rounds, learns from uploaded frames, pushes students and scores them."""
