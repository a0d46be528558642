import sys

from concurrent_mlflow.worker.main import main

sys.exit(main(sys.argv[1:]))
