"""Whole tables of the paper as one command (``crysgnn experiment TABLE``): runs, resume, report."""
