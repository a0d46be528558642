"""`concurrent demo`: a small, real, fanned-out DAG of MLprojects with a registered scikit-learn model."""
