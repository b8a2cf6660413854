"""Bandwidth scheduler: per round, how many link bytes go to data upload and which model push follows."""
