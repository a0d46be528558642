import argparse

parser = argparse.ArgumentParser()
parser.add_argument("--greeting")
parser.add_argument("--name")
args = parser.parse_args()
print(f"{args.greeting} {args.name}")
