"""Concurrent for MLflow."""
