"""Figures of a run: pure figure functions (figures) and the run-folder command behind plots.py."""
