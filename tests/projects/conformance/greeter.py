import argparse

parser = argparse.ArgumentParser()
parser.add_argument("--greeting")
parser.add_argument("--name")
parser.add_argument("--excitement", type=int, default=0)  # not in the MLproject: an extra -P, as MLflow's own
args = parser.parse_args()
print(f"{args.greeting} {args.name}{'!' * args.excitement}")
