"""What runs inside a task: fetch this partition's inputs, run the node, log outputs to the child run.

Imports only what a task container needs: sources, manifests, tracking and the project machinery.
"""
