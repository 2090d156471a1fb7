"""Reviewer tools: headless run, replay in recorded order, verify, export, reports."""
